/*
 * router.wire._hot — the router's hot path in C: a single-key request from the
 * client's bytes to its backend's queue, and its reply from the backend's bytes
 * back to the client's socket, without a Python frame per request.
 *
 * Optional, like slotwarden.resp._speedups (setup.py builds both when a C
 * compiler is there; `router.wire.hot` picks it, or None). The Python methods
 * of router/wire/client.py and router/wire/backend.py are the reference: each
 * C method here does what its Python twin does for the input it takes, and
 * hands everything else (from exactly that byte) to the Python path. It never
 * decides an error: an unknown command, a wrong arity, a malformed or partial
 * request, a broken limit, a reply it cannot frame all go to Python.
 *
 *   Pending(client, cmd=None, req=None, sent=None)
 *       one reply slot of a client's FIFO: router.wire.client.PyPending's
 *       attributes and on_reply.
 *   ClientBase
 *       router.wire.client.ClientConn's base: the connection's hot attributes
 *       as C fields (the Python class lists the rest in __slots__), and
 *       data_received (ClientConn._data_received, with ClientConn.process's
 *       single-key fast path over the bytes read: canonical multibulk requests
 *       whose command is in the fast table, with a good arity, while the
 *       client is in plain mode with nothing buffered; the rest goes to
 *       ClientConn._feed) and flush (ClientConn._flush).
 *   BackendBase
 *       router.wire.backend.BackendConn's base, likewise: its hot attributes,
 *       data_received (BackendConn._data_received for complete replies with
 *       no partial reply before them; the rest goes to the Python method),
 *       send (BackendConn._send) and flush (BackendConn._flush).
 *   LoopTurn()
 *       router.wire.turn.PyLoopTurn: the connections with output this loop turn,
 *       flushed once after every read callback of the turn.
 *   ByteCounters()
 *       router.wire.hot.PyByteCounters: the bytes read from and written to
 *       clients (RouterStats.io), added to in place.
 *   Histogram(bounds)
 *       router.wire.hot.PyHistogram: a latency histogram (RouterStats.latency),
 *       observed in place.
 *   setup(fast_table, backend_type, deque_type, up, down, closed, single, perf_counter, ...)
 *       once, at import: the command table's fast entries {name as sent:
 *       (min_args, max_args, fast_key, name, split_step, merger, shape)} (kept
 *       as a C hash table too, looked up in a request's bytes), BackendConn,
 *       collections.deque, BackendConn's UP/DOWN/CLOSED states, the latency
 *       metric's label of the fast path, the latency clock, and the fan-out's
 *       splitter and mergers.
 *
 * The fields of ClientBase and BackendBase are read and written here
 * directly; a few __slots__ of other objects (the session's last_at,
 * last_cmd and closing, CLIENT PAUSE's until, the reply scanner's buffer)
 * in place at their offset, resolved once per class (SlotRef: anything
 * that is not a plain slot goes through getattr/setattr); anything else
 * (the turn, the route table, the config) through its attribute names,
 * interned once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_frame.h"

#define MAX_KEY_INDEX 8 /* fast_key beyond this: left to the Python path */

static PyObject *FAST_TABLE;   /* dict: command name as sent -> (min, max, fast_key, name) */

/* FAST_TABLE as a C hash table, so a request's name is looked up in its bytes (no
 * bytes object, no int unboxing): open addressing, a power-of-two size, built by
 * setup(); ``name`` points into FAST_TABLE's keys, which it keeps alive. */
typedef struct {
    const char *name;
    Py_ssize_t len;
    long min_args, key, step;
    long long max_args;
    PyObject *entry; /* the FAST_TABLE tuple (borrowed) */
} FastCmd;

static FastCmd *FAST_CMDS;
static size_t FAST_MASK;

static size_t name_hash(const char *s, Py_ssize_t n) {
    size_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static const FastCmd *fast_cmd(const char *s, Py_ssize_t n) {
    if (FAST_CMDS == NULL)
        return NULL;
    for (size_t i = name_hash(s, n) & FAST_MASK;; i = (i + 1) & FAST_MASK) {
        const FastCmd *f = &FAST_CMDS[i];
        if (f->name == NULL)
            return NULL;
        if (f->len == n && memcmp(f->name, s, (size_t)n) == 0)
            return f;
    }
}

/* FAST_CMDS from a checked fast table; 0, or -1 with an exception. */
static int build_fast_cmds(PyObject *table) {
    size_t size = 16;
    while (size < 2 * (size_t)PyDict_GET_SIZE(table))
        size *= 2;
    FastCmd *cmds = PyMem_Calloc(size, sizeof(FastCmd));
    if (cmds == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(table, &pos, &key, &value)) {
        FastCmd f = {
            .name = PyBytes_AS_STRING(key),
            .len = PyBytes_GET_SIZE(key),
            .min_args = PyLong_AsLong(PyTuple_GET_ITEM(value, 0)),
            .max_args = PyLong_AsLongLong(PyTuple_GET_ITEM(value, 1)),
            .key = PyLong_AsLong(PyTuple_GET_ITEM(value, 2)),
            .step = PyLong_AsLong(PyTuple_GET_ITEM(value, 4)),
            .entry = value,
        };
        if (PyErr_Occurred()) {
            PyMem_Free(cmds);
            return -1;
        }
        size_t i = name_hash(f.name, f.len) & (size - 1);
        while (cmds[i].name != NULL)
            i = (i + 1) & (size - 1);
        cmds[i] = f;
    }
    PyMem_Free(FAST_CMDS);
    FAST_CMDS = cmds;
    FAST_MASK = size - 1;
    return 0;
}
static PyObject *BACKEND_TYPE; /* router.wire.backend.BackendConn */
static PyObject *DEQUE_APPEND, *DEQUE_POPLEFT; /* collections.deque's methods */
static PyObject *STATE_UP, *STATE_DOWN, *STATE_CLOSED;
static PyObject *SHAPE_SINGLE;
static PyObject *PERF_COUNTER;
static PyObject *ONE;
static PyObject *GROUP_KEYS;    /* slotwarden.resp.accel.group_keys (C) */
static PyObject *MERGE_ORDERED; /* slotwarden.resp.accel.merge_ordered (C), or None */
static PyObject *MERGE_FALLBACK; /* router.wire.client.merge_fanout: the reference merge */
static PyObject *UNSURE_MARK;   /* slotwarden.resp.accel.UNSURE */
static PyObject *OK_BYTES, *NIL2_BYTES, *NIL3_BYTES;
static Py_ssize_t PIECE_KEYS;   /* router.decide.large.PIECE_KEYS: larger fan-outs go to Python */

enum { MERGE_SUM = 1, MERGE_ALL_OK = 2, MERGE_ORDERED_KIND = 3 };

/* interned attribute and method names */
static PyObject *s_last_cmd, *s_sample_due, *s_dirty_backends, *s_dirty_clients, *s_time,
    *s_now, *s_send, *s_append, *s_on_reply, *s_hint_topology, *s_parker, *s_park, *s_observe,
    *s_commands, *s_count, *s_reply, *s_cmd, *s_bytes_in, *s_bytes_out, *s_last_at, *s_closing,
    *s_b, *s_chunks, *s_pos, *s_buf, *s_until, *s_route, *s_config, *s_router, *s_max_pending,
    *s_max_args, *s_max_bulk, *s_feed, *s_update_reading, *s_flush, *s_write,
    *s_close, *s_py_flush, *s_py_data_received, *s_take_ready, *s_over_output_limit, *s_bind,
    *s_proto, *s_call_soon, *s_latency, *s_flush_replies, *s_replies_all_in, *s_busy,
    *s_flush_requests;

#define IS_NONE(x) ((x) == NULL || (x) == Py_None)

/* ------------------------------------------------------------------ the bases */

typedef struct {
    PyObject_HEAD
    PyObject *fifo, *turn, *session, *stats, *transport, *loop, *state, *held, *large, *gather,
        *reader, *routes, *running, *ports, *pause, *dirty, *dropped, *out_paused, *read_paused,
        *conns, *conns_route, *plain, *input_idle, *hot_owner, *hot_config, *io, *hot_reader;
    Py_ssize_t hot_limit;
    long long hot_max_args, hot_max_bulk;
} ClientBaseObject;

typedef struct {
    PyObject_HEAD
    PyObject *state, *waiting, *out, *dirty, *turn, *loop, *transport, *progress_at, *down_reply,
        *hints, *retired, *scanner;
} BackendBaseObject;

static PyTypeObject ClientBaseType, BackendBaseType;

#define CB(o) ((ClientBaseObject *)(o))
#define BB(o) ((BackendBaseObject *)(o))
#define IS_CLIENT(o) PyObject_TypeCheck((o), &ClientBaseType)

/* ------------------------------------------------------------------ small helpers */

/* A __slots__ attribute read or written in place: the slot's offset, resolved once
 * per type (and again if the type is modified: its version tag changes), so the hot
 * path skips the attribute lookup. Anything else (no such slot, a property, an
 * unset slot) takes the plain getattr/setattr. */
typedef struct {
    PyObject *name;
    PyTypeObject *type; /* strong: the offset is only valid for it */
    unsigned int tag;
    Py_ssize_t offset; /* 0: ``type`` has no plain object slot ``name`` */
} SlotRef;

static Py_ssize_t slot_offset(PyObject *o, PyObject *name, SlotRef *ref) {
    PyTypeObject *t = Py_TYPE(o);
    if (t == ref->type && ref->tag != 0 && t->tp_version_tag == ref->tag &&
        (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG))
        return ref->offset;
    PyObject *d = _PyType_Lookup(t, name); /* borrowed; assigns the version tag */
    Py_ssize_t offset = 0;
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
        PyType_IsSubtype(t, PyDescr_TYPE(d)) && /* the slot is this layout's */
        t->tp_getattro == PyObject_GenericGetAttr && t->tp_setattro == PyObject_GenericSetAttr) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
            offset = m->offset;
    }
    Py_INCREF(t);
    Py_XSETREF(ref->type, t);
    ref->tag = (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? t->tp_version_tag : 0;
    ref->offset = offset;
    return offset;
}

/* o.<name>: a new reference, NULL on error. */
static PyObject *slot_get(PyObject *o, PyObject *name, SlotRef *ref) {
    Py_ssize_t off = slot_offset(o, name, ref);
    if (off > 0) {
        PyObject *v = *(PyObject **)((char *)o + off);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(o, name);
}

/* o.<name> = v: 0, or -1 on error. */
static int slot_set(PyObject *o, PyObject *name, SlotRef *ref, PyObject *v) {
    Py_ssize_t off = slot_offset(o, name, ref);
    if (off <= 0)
        return PyObject_SetAttr(o, name, v);
    Py_INCREF(v);
    Py_XSETREF(*(PyObject **)((char *)o + off), v);
    return 0;
}

static int slot_truth(PyObject *o, PyObject *name, SlotRef *ref) {
    PyObject *v = slot_get(o, name, ref);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

static SlotRef R_LAST_AT, R_LAST_CMD, R_CLOSING, R_UNTIL, R_SCANNER_B, R_CHUNKS, R_POS, R_BUF;

/* len() of a deque (the FIFOs): its size field, else len(). */
static PyTypeObject *DEQUE_TYPE;

static Py_ssize_t fifo_len(PyObject *d) {
    if (DEQUE_TYPE != NULL && Py_IS_TYPE(d, DEQUE_TYPE))
        return Py_SIZE(d);
    return PyObject_Length(d);
}

static int truth_attr(PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

static int call_method0(PyObject *o, PyObject *name) {
    PyObject *r = PyObject_CallMethodNoArgs(o, name);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* getattr(owner, list_name).append(item) */
static int append_to(PyObject *owner, PyObject *list_name, PyObject *item) {
    PyObject *list = PyObject_GetAttr(owner, list_name);
    if (list == NULL)
        return -1;
    int err;
    if (PyList_Check(list)) {
        err = PyList_Append(list, item);
    } else {
        PyObject *r = PyObject_CallMethodOneArg(list, s_append, item);
        err = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(list);
    return err;
}

/* deque.append(d, item) / deque.popleft(d), without the method lookup. */
static int deque_append(PyObject *d, PyObject *item) {
    PyObject *args[2] = {d, item};
    PyObject *r = PyObject_Vectorcall(DEQUE_APPEND, args, 2, NULL);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static PyObject *deque_popleft(PyObject *d) {
    PyObject *args[1] = {d};
    return PyObject_Vectorcall(DEQUE_POPLEFT, args, 1, NULL);
}

/* o.<name> += n for an int attribute (the byte counters). */
static int add_to(PyObject *o, PyObject *name, Py_ssize_t n) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    PyObject *d = PyLong_FromSsize_t(n);
    PyObject *sum = d == NULL ? NULL : PyNumber_Add(v, d);
    Py_DECREF(v);
    Py_XDECREF(d);
    if (sum == NULL)
        return -1;
    int err = PyObject_SetAttr(o, name, sum);
    Py_DECREF(sum);
    return err;
}

/* ------------------------------------------------------------------ ByteCounters */

/* router.wire.hot.PyByteCounters in C: the bytes read from and written to clients
 * (RouterStats.io), added to without an attribute lookup or an int object. */
typedef struct {
    PyObject_HEAD
    long long bytes_in, bytes_out;
} CountersObject;

static PyMemberDef Counters_members[] = {
    {"bytes_in", T_LONGLONG, offsetof(CountersObject, bytes_in), 0, "bytes read from clients"},
    {"bytes_out", T_LONGLONG, offsetof(CountersObject, bytes_out), 0, "bytes written to clients"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CountersType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.ByteCounters",
    .tp_basicsize = sizeof(CountersObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Bytes read from and written to clients (router.wire.hot.PyByteCounters).",
    .tp_new = PyType_GenericNew,
    .tp_members = Counters_members,
};

/* The client's byte counter += n: its ByteCounters (``io``) when it has one, else
 * stats.<name> += n. */
static int count_bytes(PyObject *io, PyObject *stats, int out, Py_ssize_t n) {
    if (n < 0)
        return -1; /* len() failed: its exception is set */
    if (io != NULL && Py_IS_TYPE(io, &CountersType)) {
        if (out)
            ((CountersObject *)io)->bytes_out += n;
        else
            ((CountersObject *)io)->bytes_in += n;
        return 0;
    }
    return add_to(stats, out ? s_bytes_out : s_bytes_in, n);
}

/* loop.time(), with the bound method kept for the loop it was last asked of (a
 * router process runs one loop). */
static PyObject *TIME_LOOP, *TIME_FN;

static PyObject *loop_time(PyObject *loop) {
    if (loop != TIME_LOOP || TIME_FN == NULL) {
        PyObject *fn = PyObject_GetAttr(loop, s_time);
        if (fn == NULL)
            return NULL;
        Py_XSETREF(TIME_FN, fn);
        Py_XSETREF(TIME_LOOP, Py_NewRef(loop));
    }
    return PyObject_CallNoArgs(TIME_FN);
}

/* ------------------------------------------------------------------ Histogram */

/* router.wire.hot.PyHistogram in C: a latency histogram of fixed upper bounds, its
 * counts per bucket (the last one: above every bound) and their sum, observed by
 * the hot path without a Python frame. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t n;      /* bounds */
    double *bounds;    /* ascending */
    long long *counts; /* n + 1 */
    double sum;
} HistObject;

static PyObject *Hist_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *bounds;
    if (!PyArg_ParseTuple(args, "O:Histogram", &bounds))
        return NULL;
    PyObject *seq = PySequence_Fast(bounds, "Histogram(bounds): a sequence of numbers");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    HistObject *h = (HistObject *)type->tp_alloc(type, 0);
    if (h == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    h->n = n;
    h->bounds = PyMem_Calloc((size_t)n + 1, sizeof(double));
    h->counts = PyMem_Calloc((size_t)n + 1, sizeof(long long));
    if (h->bounds == NULL || h->counts == NULL) {
        Py_DECREF(seq);
        Py_DECREF(h);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        h->bounds[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (h->bounds[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            Py_DECREF(h);
            return NULL;
        }
    }
    Py_DECREF(seq);
    return (PyObject *)h;
}

static void Hist_dealloc(HistObject *h) {
    PyMem_Free(h->bounds);
    PyMem_Free(h->counts);
    Py_TYPE(h)->tp_free((PyObject *)h);
}

/* bisect.bisect_left(bounds, seconds): the first bucket whose bound is >= seconds */
static void hist_observe(HistObject *h, double seconds) {
    Py_ssize_t lo = 0, hi = h->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (h->bounds[mid] < seconds)
            lo = mid + 1;
        else
            hi = mid;
    }
    h->counts[lo]++;
    h->sum += seconds;
}

static PyObject *Hist_observe(HistObject *h, PyObject *arg) {
    double seconds = PyFloat_AsDouble(arg);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    hist_observe(h, seconds);
    Py_RETURN_NONE;
}

static PyObject *Hist_get_counts(HistObject *h, void *unused) {
    PyObject *out = PyList_New(h->n + 1);
    for (Py_ssize_t i = 0; out != NULL && i <= h->n; i++) {
        PyObject *v = PyLong_FromLongLong(h->counts[i]);
        if (v == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, v);
    }
    return out;
}

static PyMethodDef Hist_methods[] = {
    {"observe", (PyCFunction)Hist_observe, METH_O, "count one value of ``seconds``"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Hist_members[] = {
    {"sum", T_DOUBLE, offsetof(HistObject, sum), 0, "the sum of every value observed"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Hist_getset[] = {
    {"counts", (getter)Hist_get_counts, NULL, "values per bucket (a new list; the last: above every bound)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject HistType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.Histogram",
    .tp_basicsize = sizeof(HistObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Histogram(bounds): a fixed-bucket latency histogram (router.wire.hot.PyHistogram).",
    .tp_new = Hist_new,
    .tp_dealloc = (destructor)Hist_dealloc,
    .tp_methods = Hist_methods,
    .tp_members = Hist_members,
    .tp_getset = Hist_getset,
};

/* stats.observe(shape, seconds): into the shape's Histogram directly when stats.latency
 * holds a C one, else the method. */
static int observe_latency(PyObject *stats, PyObject *shape, double seconds) {
    PyObject *latency;
    if (_PyObject_LookupAttr(stats, s_latency, &latency) < 0)
        return -1;
    PyObject *h = latency != NULL && PyDict_Check(latency) ? PyDict_GetItemWithError(latency, shape)
                                                           : NULL;
    if (h != NULL && Py_IS_TYPE(h, &HistType)) {
        hist_observe((HistObject *)h, seconds);
        Py_DECREF(latency);
        return 0;
    }
    Py_XDECREF(latency);
    if (PyErr_Occurred())
        return -1;
    PyObject *sec = PyFloat_FromDouble(seconds);
    PyObject *r = sec == NULL ? NULL
                              : PyObject_CallMethodObjArgs(stats, s_observe, shape, sec, NULL);
    Py_XDECREF(sec);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* ------------------------------------------------------------------ LoopTurn */

/* router.wire.turn.PyLoopTurn in C: the connections with output this loop turn,
 * flushed once after every read callback of the turn. */
typedef struct {
    PyObject_HEAD
    PyObject *dirty_backends, *dirty_clients, *sample_due, *loop, *flush_now;
    char scheduled;
    char busy; /* a backend with requests in flight was made dirty this turn */
    char solo; /* the client reads between the last two loop passes with any were one */
    int reads; /* client reads since the last loop pass (_flush_now) that had any */
} TurnObject;

static PyTypeObject TurnType;

static PyObject *Turn_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "LoopTurn() takes no arguments");
        return NULL;
    }
    TurnObject *turn = (TurnObject *)type->tp_alloc(type, 0);
    if (turn == NULL)
        return NULL;
    turn->dirty_backends = PyList_New(0);
    turn->dirty_clients = PyList_New(0);
    turn->sample_due = Py_NewRef(Py_True);
    turn->scheduled = 0;
    turn->busy = 0;
    turn->solo = 1;
    turn->reads = 0;
    if (turn->dirty_backends == NULL || turn->dirty_clients == NULL) {
        Py_DECREF(turn);
        return NULL;
    }
    return (PyObject *)turn;
}

static int Turn_traverse(TurnObject *turn, visitproc visit, void *arg) {
    Py_VISIT(turn->dirty_backends);
    Py_VISIT(turn->dirty_clients);
    Py_VISIT(turn->sample_due);
    Py_VISIT(turn->loop);
    Py_VISIT(turn->flush_now);
    return 0;
}

static int Turn_clear(TurnObject *turn) {
    Py_CLEAR(turn->dirty_backends);
    Py_CLEAR(turn->dirty_clients);
    Py_CLEAR(turn->sample_due);
    Py_CLEAR(turn->loop);
    Py_CLEAR(turn->flush_now);
    return 0;
}

static void Turn_dealloc(TurnObject *turn) {
    PyObject_GC_UnTrack(turn);
    Turn_clear(turn);
    Py_TYPE(turn)->tp_free((PyObject *)turn);
}

/* LoopTurn.flush: ask for _flush_now to run once, after this turn's read callbacks. */
static PyObject *Turn_flush(TurnObject *turn, PyObject *unused) {
    if (turn->scheduled)
        Py_RETURN_NONE;
    if (turn->loop == NULL) {
        PyObject *asyncio = PyImport_ImportModule("asyncio");
        turn->loop = asyncio == NULL ? NULL : PyObject_CallMethod(asyncio, "get_running_loop", NULL);
        Py_XDECREF(asyncio);
        if (turn->loop == NULL)
            return NULL;
    }
    if (turn->flush_now == NULL &&
        (turn->flush_now = PyObject_GetAttrString((PyObject *)turn, "_flush_now")) == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodOneArg(turn->loop, s_call_soon, turn->flush_now);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    turn->scheduled = 1;
    Py_RETURN_NONE;
}

/* flush() every connection in *list (swapped for a new empty list first), even past
 * one whose flush raises (it would stay dirty and never be flushed again): the first
 * exception is kept in *failed (router.wire.turn._flush_each). -1 only if out of memory. */
typedef struct {
    PyObject *type, *value, *traceback; /* the first exception (PyErr_Fetch), or NULLs */
} Failure;

static PyObject *client_flush(PyObject *client, PyObject *unused);
static PyObject *backend_flush(PyObject *conn, PyObject *unused);
static PyObject *CLIENT_FLUSH, *BACKEND_FLUSH; /* the bases' flush method descriptors */

/* conn.flush(): ClientBase's or BackendBase's own flush called directly when that is
 * what the connection's type resolves ``flush`` to, else the method call. */
static int conn_flush(PyObject *conn) {
    PyObject *descr = _PyType_Lookup(Py_TYPE(conn), s_flush); /* borrowed, cached by type */
    PyObject *r;
    if (descr != NULL && descr == CLIENT_FLUSH)
        r = client_flush(conn, NULL);
    else if (descr != NULL && descr == BACKEND_FLUSH)
        r = backend_flush(conn, NULL);
    else
        r = PyObject_CallMethodNoArgs(conn, s_flush);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int flush_each(PyObject **list, Failure *failed) {
    PyObject *items = *list;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return -1;
    *list = fresh;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        if (conn_flush(PyList_GET_ITEM(items, i)) < 0) {
            if (failed->type == NULL)
                PyErr_Fetch(&failed->type, &failed->value, &failed->traceback);
            else
                PyErr_Clear();
        }
    }
    Py_DECREF(items);
    return 0;
}

/* The turn is over: the next starts free (not busy) and times its first single-key
 * request. At the loop's pass (_flush_now, loop_pass) the client reads since the last
 * such end set solo: one, a quiet loop; several, a busy one (their requests batched);
 * none, as before. A turn ended in place (an early write left nothing dirty) keeps
 * counting them: reads of one loop pass written early one by one add up there. */
static void turn_end(TurnObject *turn, int loop_pass) {
    turn->busy = 0;
    if (loop_pass && turn->reads > 0) {
        turn->solo = turn->reads == 1;
        turn->reads = 0;
    }
    Py_XSETREF(turn->sample_due, Py_NewRef(Py_True));
}

/* LoopTurn._flush_now: every connection with output, flushed, including output the
 * flushes themselves produce; the next turn's first single-key request is timed. */
static PyObject *Turn_flush_now(TurnObject *turn, PyObject *unused) {
    Failure failed = {NULL, NULL, NULL};
    turn->scheduled = 0;
    turn_end(turn, 1);
    while (1) {
        if (turn->dirty_backends == NULL || turn->dirty_clients == NULL ||
            !PyList_Check(turn->dirty_backends) || !PyList_Check(turn->dirty_clients)) {
            PyErr_SetString(PyExc_TypeError, "LoopTurn's dirty lists must be lists");
            break;
        }
        if (PyList_GET_SIZE(turn->dirty_backends) == 0 && PyList_GET_SIZE(turn->dirty_clients) == 0)
            break;
        if (flush_each(&turn->dirty_backends, &failed) < 0 ||
            flush_each(&turn->dirty_clients, &failed) < 0)
            break;
    }
    if (failed.type != NULL) { /* a bug: raised once the others are written */
        PyErr_Clear();
        PyErr_Restore(failed.type, failed.value, failed.traceback);
        return NULL;
    }
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static int slot_answered(PyObject *slot);

/* conn.replies_all_in(): for a ClientBase, every reply slot of its FIFO answered (a
 * Pending's reply field, another slot's ``reply``); the method otherwise. 1, 0, -1. */
static int replies_all_in(PyObject *conn) {
    if (!IS_CLIENT(conn)) {
        PyObject *r = PyObject_CallMethodNoArgs(conn, s_replies_all_in);
        int t = r == NULL ? -1 : PyObject_IsTrue(r);
        Py_XDECREF(r);
        return t;
    }
    PyObject *fifo = CB(conn)->fifo;
    if (IS_NONE(fifo))
        return 1;
    Py_ssize_t n = fifo_len(fifo);
    if (n < 0)
        return -1;
    int all = 1;
    Py_INCREF(fifo); /* a slot's reply attribute may run Python code */
    if (n <= 32) { /* by index, no iterator object: O(1) each within a deque's first blocks */
        for (Py_ssize_t i = 0; all == 1 && i < n; i++) {
            PyObject *slot = PySequence_GetItem(fifo, i);
            all = slot == NULL ? -1 : slot_answered(slot);
            Py_XDECREF(slot);
        }
        Py_DECREF(fifo);
        return all;
    }
    PyObject *it = PyObject_GetIter(fifo);
    Py_DECREF(fifo);
    if (it == NULL)
        return -1;
    PyObject *slot;
    while (all == 1 && (slot = PyIter_Next(it)) != NULL) {
        all = slot_answered(slot);
        Py_DECREF(slot);
    }
    Py_DECREF(it);
    return all == 1 && PyErr_Occurred() ? -1 : all;
}

/* After an early write: the end of the turn scheduled if anything is still dirty;
 * else, unless already scheduled, this turn is over here (the next one's first
 * single-key request is timed, as _flush_now would have said). */
static PyObject *turn_settle(TurnObject *turn) {
    if (turn->scheduled || turn->dirty_backends == NULL || !PyList_Check(turn->dirty_backends) ||
        turn->dirty_clients == NULL || !PyList_Check(turn->dirty_clients) ||
        PyList_GET_SIZE(turn->dirty_backends) != 0 || PyList_GET_SIZE(turn->dirty_clients) != 0)
        return Turn_flush(turn, NULL); /* _flush_now raises for lists that are not lists */
    turn_end(turn, 0);
    Py_RETURN_NONE;
}

/* Write now the connections of *list (a dirty list, swapped for a new empty one
 * first) that are ready (check_replies: a client every reply of which is in; else
 * every one); one not ready, or whose check or flush raises (a bug), goes back to
 * *list for _flush_now, which raises it. Then the turn settles (turn_settle). */
static PyObject *flush_early(TurnObject *turn, PyObject **list, int check_replies) {
    PyObject *items = *list;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    *list = fresh;   /* items is ours now */
    Py_INCREF(turn); /* a flush may drop other references to it */
    int failed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *conn = PyList_GET_ITEM(items, i);
        int ready = check_replies ? replies_all_in(conn) : 1;
        if (ready == 1 && conn_flush(conn) == 0)
            continue;
        if (ready != 0)
            PyErr_Clear(); /* left for _flush_now, which raises it */
        if (*list == NULL || !PyList_Check(*list) || PyList_Append(*list, conn) < 0) {
            failed = 1;
            break;
        }
    }
    Py_DECREF(items);
    PyObject *r = failed ? NULL : turn_settle(turn);
    if (failed && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "LoopTurn's dirty lists must be lists");
    Py_DECREF(turn);
    return r;
}

/* LoopTurn.flush_replies (router.wire.turn.PyLoopTurn's): at the end of a backend
 * read, the dirty clients every reply of which is in written now, the others left
 * for the end of the turn (scheduled). A client whose check or flush raises (a bug)
 * is left there too, and _flush_now raises it: never this backend read's callback,
 * whose exception would close the backend connection. */
static PyObject *Turn_flush_replies(TurnObject *turn, PyObject *unused) {
    if (turn->dirty_clients == NULL || !PyList_Check(turn->dirty_clients)) {
        PyErr_SetString(PyExc_TypeError, "LoopTurn's dirty lists must be lists");
        return NULL;
    }
    return flush_early(turn, &turn->dirty_clients, 1);
}

/* LoopTurn.flush_requests (router.wire.turn.PyLoopTurn's): at the end of a client
 * read. Nagle's rule for the request path: when the loop is quiet (solo: one client
 * read between its last two passes that had any), nothing else waits for the end of
 * this turn (not scheduled, no client output) and no backend made dirty this turn had
 * requests in flight (busy unset), the dirty backends are written now (one loop pass
 * sooner: the latency of a lone client); otherwise at the end of the turn, where the
 * requests of many clients share one write per backend. A backend whose flush raises
 * (a bug) is left for _flush_now, which raises it: never into the client's read
 * callback, whose exception would close the client connection. */
static PyObject *Turn_flush_requests(TurnObject *turn, PyObject *unused) {
    PyObject *backends = turn->dirty_backends;
    if (backends == NULL || !PyList_Check(backends) || turn->dirty_clients == NULL ||
        !PyList_Check(turn->dirty_clients)) {
        PyErr_SetString(PyExc_TypeError, "LoopTurn's dirty lists must be lists");
        return NULL;
    }
    if (turn->reads < INT_MAX)
        turn->reads++;
    if (turn->scheduled || turn->busy || !turn->solo || PyList_GET_SIZE(turn->dirty_clients) != 0 ||
        PyList_GET_SIZE(backends) == 0)
        return Turn_flush(turn, NULL);
    return flush_early(turn, &turn->dirty_backends, 0);
}

static PyMethodDef Turn_methods[] = {
    {"flush_replies", (PyCFunction)Turn_flush_replies, METH_NOARGS,
     "at the end of a backend read: write the clients every reply of which is in now, "
     "the rest at the end of the turn"},
    {"flush_requests", (PyCFunction)Turn_flush_requests, METH_NOARGS,
     "at the end of a client read: write now the backends that had nothing in flight, "
     "when nothing else waits for the end of the turn; else flush()"},
    {"flush", (PyCFunction)Turn_flush, METH_NOARGS,
     "ask for this turn's output to be written once, after every read callback of the turn"},
    {"_flush_now", (PyCFunction)Turn_flush_now, METH_NOARGS, "write this turn's output now"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Turn_members[] = {
    {"dirty_backends", T_OBJECT, offsetof(TurnObject, dirty_backends), 0, "backends to flush"},
    {"dirty_clients", T_OBJECT, offsetof(TurnObject, dirty_clients), 0, "clients to flush"},
    {"sample_due", T_OBJECT, offsetof(TurnObject, sample_due), 0, "time the next single-key request"},
    {"_scheduled", T_BOOL, offsetof(TurnObject, scheduled), 0, "a flush is scheduled"},
    {"busy", T_BOOL, offsetof(TurnObject, busy), 0,
     "a backend with requests in flight was made dirty this turn"},
    {"solo", T_BOOL, offsetof(TurnObject, solo), 0, "the loop is quiet: one client read a pass"},
    {"reads", T_INT, offsetof(TurnObject, reads), 0, "client reads since the last loop pass"},
    {"_loop", T_OBJECT, offsetof(TurnObject, loop), READONLY, "the loop (cached)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TurnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.LoopTurn",
    .tp_basicsize = sizeof(TurnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One event-loop turn of output (router.wire.turn.PyLoopTurn is the reference).",
    .tp_new = Turn_tp_new,
    .tp_dealloc = (destructor)Turn_dealloc,
    .tp_traverse = (traverseproc)Turn_traverse,
    .tp_clear = (inquiry)Turn_clear,
    .tp_methods = Turn_methods,
    .tp_members = Turn_members,
};

static PyObject *Turn_flush_replies(TurnObject *turn, PyObject *unused);
static PyObject *Turn_flush_requests(TurnObject *turn, PyObject *unused);

/* turn.<name>(): the C method `method` for a LoopTurn, the method call otherwise. */
static int turn_call(PyObject *turn, PyObject *(*method)(TurnObject *, PyObject *),
                     PyObject *name) {
    Py_INCREF(turn);
    PyObject *r = Py_IS_TYPE(turn, &TurnType) ? method((TurnObject *)turn, NULL)
                                             : PyObject_CallMethodNoArgs(turn, name);
    Py_DECREF(turn);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* turn.sample_due: 1, 0, or -1 on error. */
static int turn_sample_due(PyObject *turn) {
    if (Py_IS_TYPE(turn, &TurnType))
        return PyObject_IsTrue(((TurnObject *)turn)->sample_due ? ((TurnObject *)turn)->sample_due
                                                                 : Py_False);
    return truth_attr(turn, s_sample_due);
}

/* turn.sample_due = False */
static int turn_sampled(PyObject *turn) {
    if (Py_IS_TYPE(turn, &TurnType)) {
        Py_XSETREF(((TurnObject *)turn)->sample_due, Py_NewRef(Py_False));
        return 0;
    }
    return PyObject_SetAttr(turn, s_sample_due, Py_False);
}

/* turn.busy = True */
static int turn_busy(PyObject *turn) {
    if (Py_IS_TYPE(turn, &TurnType)) {
        ((TurnObject *)turn)->busy = 1;
        return 0;
    }
    return PyObject_SetAttr(turn, s_busy, Py_True);
}

/* turn.<dirty list>.append(conn) */
static int turn_dirty(PyObject *turn, int clients, PyObject *conn) {
    if (Py_IS_TYPE(turn, &TurnType)) {
        PyObject *list = clients ? ((TurnObject *)turn)->dirty_clients
                                 : ((TurnObject *)turn)->dirty_backends;
        if (list != NULL && PyList_Check(list))
            return PyList_Append(list, conn);
    }
    return append_to(turn, clients ? s_dirty_clients : s_dirty_backends, conn);
}

/* loop.time() into *field (a BackendBase's progress_at). */
static int set_now(PyObject *loop, PyObject **field) {
    if (IS_NONE(loop)) {
        PyErr_SetString(PyExc_RuntimeError, "connection has no loop yet");
        return -1;
    }
    PyObject *now = loop_time(loop);
    if (now == NULL)
        return -1;
    Py_XSETREF(*field, now);
    return 0;
}

/* A slotwarden.resp.buffer.Buffer with no unread byte: 1, 0, or -1. */
static int buffer_empty(PyObject *b) {
    PyObject *chunks = slot_get(b, s_chunks, &R_CHUNKS);
    if (chunks == NULL)
        return -1;
    Py_ssize_t n = PyObject_Length(chunks);
    Py_DECREF(chunks);
    if (n != 0)
        return n < 0 ? -1 : 0;
    PyObject *pos = slot_get(b, s_pos, &R_POS);
    PyObject *buf = pos == NULL ? NULL : slot_get(b, s_buf, &R_BUF);
    Py_ssize_t at = pos == NULL ? -1 : PyLong_AsSsize_t(pos);
    Py_ssize_t size = buf == NULL ? -1 : PyObject_Length(buf);
    Py_XDECREF(pos);
    Py_XDECREF(buf);
    if (PyErr_Occurred())
        return -1;
    return at >= size;
}

/* b"".join(parts) for a non-empty list of bytes (the one item itself when alone). */
static PyObject *join_bytes(PyObject *parts) {
    Py_ssize_t count = PyList_GET_SIZE(parts), total = 0;
    if (count == 1)
        return Py_NewRef(PyList_GET_ITEM(parts, 0));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        if (!PyBytes_Check(b)) {
            PyErr_SetString(PyExc_TypeError, "only bytes are written");
            return NULL;
        }
        total += PyBytes_GET_SIZE(b);
    }
    PyObject *joined = PyBytes_FromStringAndSize(NULL, total);
    if (joined == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(joined);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        memcpy(o, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
        o += PyBytes_GET_SIZE(b);
    }
    return joined;
}

/* ------------------------------------------------------------------ Pending */

typedef struct {
    PyObject_HEAD
    PyObject *client;
    PyObject *cmd;
    PyObject *reply;
    PyObject *req;
    PyObject *sent;
    PyObject *shape;
    double t0;
} PendingObject;

static PyTypeObject PendingType;

static PendingObject *pending_new(PyObject *client, PyObject *cmd, PyObject *req,
                                  PyObject *sent) {
    PendingObject *p = PyObject_GC_New(PendingObject, &PendingType);
    if (p == NULL)
        return NULL;
    p->client = Py_NewRef(client);
    p->cmd = Py_NewRef(cmd);
    p->reply = Py_NewRef(Py_None);
    p->req = Py_NewRef(req);
    p->sent = Py_NewRef(sent);
    p->shape = Py_NewRef(Py_None);
    p->t0 = 0.0;
    PyObject_GC_Track(p);
    return p;
}

static PyObject *Pending_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"client", "cmd", "req", "sent", NULL};
    PyObject *client, *cmd = Py_None, *req = Py_None, *sent = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO:Pending", names, &client, &cmd, &req,
                                     &sent))
        return NULL;
    return (PyObject *)pending_new(client, cmd, req, sent);
}

static int Pending_traverse(PendingObject *p, visitproc visit, void *arg) {
    Py_VISIT(p->client);
    Py_VISIT(p->cmd);
    Py_VISIT(p->reply);
    Py_VISIT(p->req);
    Py_VISIT(p->sent);
    Py_VISIT(p->shape);
    return 0;
}

static int Pending_clear(PendingObject *p) {
    Py_CLEAR(p->client);
    Py_CLEAR(p->cmd);
    Py_CLEAR(p->reply);
    Py_CLEAR(p->req);
    Py_CLEAR(p->sent);
    Py_CLEAR(p->shape);
    return 0;
}

static void Pending_dealloc(PendingObject *p) {
    PyObject_GC_UnTrack(p);
    Pending_clear(p);
    PyObject_GC_Del(p);
}

/* Pending.on_reply, as router.wire.client.PyPending.on_reply: a -READONLY to a
 * replayable request may be parked; the sampled latency observed; the client
 * marked dirty when this reply is at the head of its FIFO. 0, or -1 on error. */
static int pending_reply(PendingObject *p, PyObject *raw) {
    PyObject *client = p->client;
    if (client == NULL || !IS_CLIENT(client)) {
        PyErr_SetString(PyExc_TypeError, "Pending.client is not a ClientConn");
        return -1;
    }
    ClientBaseObject *c = CB(client);
    if (!IS_NONE(p->req) && PyBytes_Check(raw) && PyBytes_GET_SIZE(raw) >= 9 &&
        memcmp(PyBytes_AS_STRING(raw), "-READONLY", 9) == 0) {
        PyObject *req = p->req; /* held and resent at most once */
        p->req = Py_NewRef(Py_None);
        PyObject *parker = IS_NONE(c->ports) ? NULL : PyObject_GetAttr(c->ports, s_parker);
        PyObject *parked = parker == NULL ? NULL
                                          : PyObject_CallMethodObjArgs(parker, s_park, (PyObject *)p,
                                                                       raw, req, NULL);
        Py_XDECREF(parker);
        Py_DECREF(req);
        if (parked == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "client has no ports");
            return -1;
        }
        int held = PyObject_IsTrue(parked);
        Py_DECREF(parked);
        if (held != 0)
            return held < 0 ? -1 : 0;
    }
    Py_INCREF(raw);
    Py_XSETREF(p->reply, raw);
    if (p->t0 != 0.0 && !IS_NONE(c->stats)) {
        PyObject *now = PyObject_CallNoArgs(PERF_COUNTER);
        if (now == NULL)
            return -1;
        double seconds = PyFloat_AsDouble(now) - p->t0;
        Py_DECREF(now);
        if (observe_latency(c->stats, IS_NONE(p->shape) ? Py_None : p->shape, seconds) < 0)
            return -1;
    }
    if (c->dirty == Py_True || IS_NONE(c->fifo))
        return 0;
    Py_ssize_t n = fifo_len(c->fifo);
    if (n <= 0)
        return n < 0 ? -1 : 0;
    PyObject *head = PySequence_GetItem(c->fifo, 0);
    if (head == NULL)
        return -1;
    Py_DECREF(head); /* identity only */
    if (head != (PyObject *)p)
        return 0;
    Py_XSETREF(c->dirty, Py_NewRef(Py_True));
    return IS_NONE(c->turn) ? 0 : turn_dirty(c->turn, 1, client);
}

static PyObject *Pending_on_reply(PendingObject *p, PyObject *raw) {
    if (pending_reply(p, raw) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef Pending_methods[] = {
    {"on_reply", (PyCFunction)Pending_on_reply, METH_O,
     "on_reply(raw): the reply arrived (router.wire.client.PyPending.on_reply)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Pending_members[] = {
    {"client", T_OBJECT, offsetof(PendingObject, client), 0, "the ClientConn"},
    {"cmd", T_OBJECT, offsetof(PendingObject, cmd), 0, "the command's name (metrics), or None"},
    {"reply", T_OBJECT, offsetof(PendingObject, reply), 0, "the reply's raw bytes, once there"},
    {"req", T_OBJECT, offsetof(PendingObject, req), 0, "a request -READONLY may replay"},
    {"sent", T_OBJECT, offsetof(PendingObject, sent), 0, "the connection req went to"},
    {"shape", T_OBJECT, offsetof(PendingObject, shape), 0, "latency label (sampled)"},
    {"t0", T_DOUBLE, offsetof(PendingObject, t0), 0, "perf_counter at send (sampled), or 0"},
    {NULL, 0, 0, 0, NULL},
};

/* A FIFO slot's reply is in: a Pending's reply field, another slot's ``reply``.
 * 1, 0, or -1 on error. */
static int slot_answered(PyObject *slot) {
    if (Py_IS_TYPE(slot, &PendingType))
        return !IS_NONE(((PendingObject *)slot)->reply);
    PyObject *reply = PyObject_GetAttr(slot, s_reply);
    int answered = reply == NULL ? -1 : reply != Py_None;
    Py_XDECREF(reply);
    return answered;
}

static PyTypeObject PendingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.Pending",
    .tp_basicsize = sizeof(PendingObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One reply slot in a client's FIFO (router.wire.client.PyPending is the reference).",
    .tp_new = Pending_tp_new,
    .tp_dealloc = (destructor)Pending_dealloc,
    .tp_traverse = (traverseproc)Pending_traverse,
    .tp_clear = (inquiry)Pending_clear,
    .tp_methods = Pending_methods,
    .tp_members = Pending_members,
};

/* ------------------------------------------------------------------ fan-outs */

/* A fan-out's parts, merged into its Pending once the last is in (router.decide.fanin's
 * FanIn, for MGET/MSET/DEL-likes sent by the fast path). */
typedef struct {
    PyObject_HEAD
    PyObject *pending;   /* the client's reply slot */
    PyObject *parts;     /* list of replies, in part order (b"" until in) */
    PyObject *positions; /* MGET: list of key positions per part; None otherwise */
    PyObject *kind;      /* the merger's name (str), for the reference merge */
    Py_ssize_t remaining, total;
    int merger, resp3;
} FanObject;

typedef struct {
    PyObject_HEAD
    PyObject *fan;
    Py_ssize_t index;
} FanPartObject;

static PyTypeObject FanType, FanPartType;

static int Fan_traverse(FanObject *f, visitproc visit, void *arg) {
    Py_VISIT(f->pending);
    Py_VISIT(f->parts);
    Py_VISIT(f->positions);
    Py_VISIT(f->kind);
    return 0;
}

static int Fan_clear(FanObject *f) {
    Py_CLEAR(f->pending);
    Py_CLEAR(f->parts);
    Py_CLEAR(f->positions);
    Py_CLEAR(f->kind);
    return 0;
}

static void Fan_dealloc(FanObject *f) {
    PyObject_GC_UnTrack(f);
    Fan_clear(f);
    PyObject_GC_Del(f);
}

static int FanPart_traverse(FanPartObject *p, visitproc visit, void *arg) {
    Py_VISIT(p->fan);
    return 0;
}

static int FanPart_clear(FanPartObject *p) {
    Py_CLEAR(p->fan);
    return 0;
}

static void FanPart_dealloc(FanPartObject *p) {
    PyObject_GC_UnTrack(p);
    FanPart_clear(p);
    PyObject_GC_Del(p);
}

/* The merge in C when every part is what the merger expects; NULL with no error
 * set when C leaves it to the reference (an error reply, an odd part). */
static PyObject *merge_fast(FanObject *f) {
    Py_ssize_t n = PyList_GET_SIZE(f->parts);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw = PyList_GET_ITEM(f->parts, i);
        if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) == 0 || PyBytes_AS_STRING(raw)[0] == '-')
            return NULL; /* an error: the reference returns the first one */
    }
    if (f->merger == MERGE_ALL_OK) {
        for (Py_ssize_t i = 0; i < n; i++)
            if (PyBytes_GET_SIZE(PyList_GET_ITEM(f->parts, i)) != 5 ||
                memcmp(PyBytes_AS_STRING(PyList_GET_ITEM(f->parts, i)), "+OK\r\n", 5) != 0)
                return NULL;
        return Py_NewRef(OK_BYTES);
    }
    if (f->merger == MERGE_SUM) {
        long long total = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *raw = PyList_GET_ITEM(f->parts, i);
            const char *s = PyBytes_AS_STRING(raw);
            Py_ssize_t size = PyBytes_GET_SIZE(raw);
            if (s[0] != ':' || size < 4 || s[size - 2] != '\r' || s[size - 1] != '\n')
                return NULL;
            long long v = plain_digits(s, 1, size - 2); /* a DEL count is never negative */
            if (v < 0 || total > (1LL << 60))
                return NULL;
            total += v;
        }
        char text[32];
        int len = snprintf(text, sizeof text, ":%lld\r\n", total);
        return PyBytes_FromStringAndSize(text, len);
    }
    if (f->merger == MERGE_ORDERED_KIND && MERGE_ORDERED != Py_None) {
        PyObject *total = PyLong_FromSsize_t(f->total);
        if (total == NULL)
            return NULL;
        PyObject *args[4] = {f->parts, f->positions, total, f->resp3 ? NIL3_BYTES : NIL2_BYTES};
        PyObject *merged = PyObject_Vectorcall(MERGE_ORDERED, args, 4, NULL);
        Py_DECREF(total);
        if (merged == NULL || merged != UNSURE_MARK)
            return merged;
        Py_DECREF(merged);
    }
    return NULL;
}

static int fan_part_reply(FanPartObject *part, PyObject *raw) {
    FanObject *f = (FanObject *)part->fan;
    if (f == NULL || f->parts == NULL || part->index >= PyList_GET_SIZE(f->parts)) {
        PyErr_SetString(PyExc_RuntimeError, "fan-out part answered twice");
        return -1;
    }
    Py_INCREF(raw);
    if (PyList_SetItem(f->parts, part->index, raw) < 0)
        return -1;
    if (--f->remaining > 0)
        return 0;
    Py_INCREF(f);
    PyObject *merged = merge_fast(f);
    if (merged == NULL) { /* the reference (router.wire.client.merge_fanout), which turns a */
        PyErr_Clear();    /* merger that raises into an error reply, as FanIn does */
        PyObject *total = PyLong_FromSsize_t(f->total);
        PyObject *args[5] = {f->kind, f->parts, f->positions, total, f->resp3 ? Py_True : Py_False};
        merged = total == NULL ? NULL : PyObject_Vectorcall(MERGE_FALLBACK, args, 5, NULL);
        Py_XDECREF(total);
    }
    int err = -1;
    if (merged != NULL) {
        Py_CLEAR(f->parts); /* answered: nothing more comes */
        PyObject *pending = f->pending;
        err = Py_IS_TYPE(pending, &PendingType)
                  ? pending_reply((PendingObject *)pending, merged)
                  : (Py_XDECREF(PyObject_CallMethodOneArg(pending, s_on_reply, merged)),
                     PyErr_Occurred() ? -1 : 0);
        Py_DECREF(merged);
    }
    Py_DECREF(f);
    return err;
}

static PyObject *FanPart_on_reply(FanPartObject *p, PyObject *raw) {
    if (fan_part_reply(p, raw) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef FanPart_methods[] = {
    {"on_reply", (PyCFunction)FanPart_on_reply, METH_O, "on_reply(raw): this part's reply"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.Fan",
    .tp_basicsize = sizeof(FanObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A fan-out's parts, merged into one reply (router.decide.fanin.FanIn).",
    .tp_dealloc = (destructor)Fan_dealloc,
    .tp_traverse = (traverseproc)Fan_traverse,
    .tp_clear = (inquiry)Fan_clear,
};

static PyTypeObject FanPartType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.FanPart",
    .tp_basicsize = sizeof(FanPartObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One part of a Fan (router.decide.fanin.FanInPart).",
    .tp_dealloc = (destructor)FanPart_dealloc,
    .tp_traverse = (traverseproc)FanPart_traverse,
    .tp_clear = (inquiry)FanPart_clear,
    .tp_methods = FanPart_methods,
};

/* waiter.on_reply(raw): inlined for a Pending or a fan-out part, a method call for
 * anything else. */
static int answer(PyObject *waiter, PyObject *raw) {
    if (Py_IS_TYPE(waiter, &PendingType))
        return pending_reply((PendingObject *)waiter, raw);
    if (Py_IS_TYPE(waiter, &FanPartType))
        return fan_part_reply((FanPartObject *)waiter, raw);
    PyObject *r = PyObject_CallMethodOneArg(waiter, s_on_reply, raw);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ requests */

/* BackendConn.send(raw, pending), inlined for a BackendConn (a method call for
 * anything else, e.g. a pinned connection): answered with the shard-down reply
 * while down, else queued for the end of the loop turn (progress_at set when
 * nothing was waiting). */
static int backend_queue(PyObject *conn, PyObject *raw, PyObject *pending);

static int backend_send(PyObject *conn, PyObject *raw, PyObject *pending) {
    if ((PyObject *)Py_TYPE(conn) != BACKEND_TYPE) {
        PyObject *r = PyObject_CallMethodObjArgs(conn, s_send, raw, pending, NULL);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    return backend_queue(conn, raw, pending);
}

/* BackendBase.send's work on the connection's fields (BackendConn._send). */
static int backend_queue(PyObject *conn, PyObject *raw, PyObject *pending) {
    BackendBaseObject *b = BB(conn);
    if (b->state == STATE_DOWN || b->state == STATE_CLOSED) {
        PyObject *down = b->down_reply;
        if (down == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "backend has no down_reply");
            return -1;
        }
        Py_INCREF(down);
        int err = answer(pending, down);
        Py_DECREF(down);
        return err;
    }
    if (b->waiting == NULL || b->out == NULL || !PyList_Check(b->out)) {
        PyErr_SetString(PyExc_RuntimeError, "backend has no waiting/out");
        return -1;
    }
    Py_ssize_t n = fifo_len(b->waiting);
    if (n < 0)
        return -1;
    if (n == 0) {
        if (IS_NONE(b->loop)) { /* BackendConn.now caches the loop */
            PyObject *now = PyObject_CallMethodNoArgs(conn, s_now);
            if (now == NULL)
                return -1;
            Py_XSETREF(b->progress_at, now);
        } else if (set_now(b->loop, &b->progress_at) < 0) {
            return -1;
        }
    }
    if (deque_append(b->waiting, pending) < 0 || PyList_Append(b->out, raw) < 0)
        return -1;
    if (b->dirty == Py_True)
        return 0;
    if (!IS_NONE(b->turn) && n > 0 && turn_busy(b->turn) < 0) /* in flight: batch them */
        return -1;
    Py_XSETREF(b->dirty, Py_NewRef(Py_True));
    return IS_NONE(b->turn) ? 0 : turn_dirty(b->turn, 0, conn);
}

/* One canonical multibulk request at s[pos:size] with every bulk within
 * max_bulk and at most max_args arguments. 1: *end = past it, argc and the
 * first MAX_KEY_INDEX + 1 arguments' (start, length) filled; 0: not one this
 * path takes, or not complete (the Python path reads it). */
static int frame_request(const char *s, Py_ssize_t pos, Py_ssize_t size, long long max_args,
                         long long max_bulk, Py_ssize_t *end, long long *argc_out,
                         Py_ssize_t *starts, Py_ssize_t *lens) {
    if (s[pos] != '*')
        return 0;
    Py_ssize_t nl = find_crlf(s, pos + 1, size);
    if (nl < 0)
        return 0;
    long long argc = canonical_len(s, pos + 1, nl);
    if (argc < 1 || argc > max_args)
        return 0;
    Py_ssize_t p = nl + 2;
    for (long long i = 0; i < argc; i++) {
        if (p >= size || s[p] != '$')
            return 0;
        nl = find_crlf(s, p + 1, size);
        if (nl < 0)
            return 0;
        long long len = canonical_len(s, p + 1, nl);
        if (len < 0 || len > max_bulk)
            return 0;
        p = nl + 2;
        if (i <= MAX_KEY_INDEX) {
            starts[i] = p;
            lens[i] = (Py_ssize_t)len;
        }
        if ((long long)(size - p) < len + 2)
            return 0;
        p += (Py_ssize_t)len;
        if (s[p] != '\r' || s[p + 1] != '\n')
            return 0;
        p += 2;
    }
    *end = p;
    *argc_out = argc;
    return 1;
}

/* The arguments of the well-formed request at s[pos:end] (argc of them; framed by
 * frame_request already). */
static PyObject *request_args(const char *s, Py_ssize_t pos, Py_ssize_t end, long long argc) {
    PyObject *args = PyList_New((Py_ssize_t)argc);
    if (args == NULL)
        return NULL;
    Py_ssize_t p = find_crlf(s, pos + 1, end) + 2; /* past "*<argc>\r\n" */
    for (Py_ssize_t i = 0; i < (Py_ssize_t)argc; i++) {
        Py_ssize_t nl = p + 1;
        while (s[nl] != '\r')
            nl++;
        Py_ssize_t len = (Py_ssize_t)canonical_len(s, p + 1, nl);
        PyObject *a = PyBytes_FromStringAndSize(s + nl + 2, len);
        if (a == NULL) {
            Py_DECREF(args);
            return NULL;
        }
        PyList_SET_ITEM(args, i, a);
        p = nl + 2 + len + 2;
    }
    return args;
}

static int set_timed(PendingObject *p, PyObject *shape) {
    PyObject *now = PyObject_CallNoArgs(PERF_COUNTER);
    if (now == NULL)
        return -1;
    p->t0 = PyFloat_AsDouble(now);
    Py_DECREF(now);
    Py_SETREF(p->shape, Py_NewRef(shape));
    return 0;
}

/* ClientConn._send_fanout for a request the fast path framed (MGET/MSET/DEL-likes,
 * the argument count checked): split by group_keys, each part queued on its shard,
 * the replies merged into one Pending appended to the FIFO. 0, or -1 on error. */
static int send_fanout(ClientBaseObject *c, PyObject *data, Py_ssize_t pos, Py_ssize_t end,
                       long long argc, PyObject *owner, PyObject *conns, PyObject *entry) {
    PyObject *client = (PyObject *)c;
    const char *s = PyBytes_AS_STRING(data);
    PyObject *cmd = PyTuple_GET_ITEM(entry, 3), *step = PyTuple_GET_ITEM(entry, 4);
    PyObject *kind = PyTuple_GET_ITEM(entry, 5), *shape = PyTuple_GET_ITEM(entry, 6);
    PyObject *args = request_args(s, pos, end, argc);
    if (args == NULL)
        return -1;
    PyObject *call[3] = {args, step, owner};
    PyObject *grouped = PyObject_Vectorcall(GROUP_KEYS, call, 3, NULL);
    Py_DECREF(args);
    if (grouped == NULL)
        return -1;
    int err = -1;
    PendingObject *p = NULL;
    FanObject *f = NULL;
    if (PyLong_Check(grouped)) { /* every key on one shard: the request as it came */
        Py_ssize_t shard = PyLong_AsSsize_t(grouped);
        if (shard < 0 || shard >= PyList_GET_SIZE(conns)) {
            PyErr_SetString(PyExc_IndexError, "fan-out to an unknown shard");
            goto done;
        }
        PyObject *conn = PyList_GET_ITEM(conns, shard);
        PyObject *raw = pos == 0 && end == PyBytes_GET_SIZE(data)
                            ? Py_NewRef(data)
                            : PyBytes_FromStringAndSize(s + pos, end - pos);
        if (raw == NULL)
            goto done;
        p = pending_new(client, cmd, raw, conn);
        /* timed after the send, as _send_fanout: a reply given at once (shard down) is not */
        if (p == NULL || deque_append(c->fifo, (PyObject *)p) < 0 ||
            backend_send(conn, raw, (PyObject *)p) < 0 || set_timed(p, shape) < 0) {
            Py_DECREF(raw);
            goto done;
        }
        Py_DECREF(raw);
        err = 0;
        goto done;
    }
    if (!PyList_Check(grouped)) {
        PyErr_SetString(PyExc_TypeError, "group_keys returned neither int nor list");
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(grouped);
    p = pending_new(client, cmd, Py_None, Py_None);
    if (p == NULL || deque_append(c->fifo, (PyObject *)p) < 0)
        goto done;
    f = PyObject_GC_New(FanObject, &FanType);
    if (f == NULL)
        goto done;
    f->pending = Py_NewRef((PyObject *)p);
    f->parts = PyList_New(n);
    f->positions = NULL;
    f->kind = Py_NewRef(kind);
    f->remaining = n;
    f->total = (Py_ssize_t)argc - 1;
    f->merger = PyUnicode_CompareWithASCIIString(kind, "sum") == 0      ? MERGE_SUM
                : PyUnicode_CompareWithASCIIString(kind, "all-ok") == 0 ? MERGE_ALL_OK
                : PyUnicode_CompareWithASCIIString(kind, "ordered") == 0 ? MERGE_ORDERED_KIND
                                                                         : 0;
    f->resp3 = 0;
    PyObject_GC_Track(f);
    if (f->parts == NULL)
        goto done;
    if (f->merger == MERGE_ORDERED_KIND || f->merger == 0) {
        PyObject *proto = IS_NONE(c->session) ? NULL : PyObject_GetAttr(c->session, s_proto);
        if (proto == NULL)
            goto done;
        f->resp3 = PyLong_Check(proto) && PyLong_AsLong(proto) == 3;
        Py_DECREF(proto);
    }
    f->positions = f->merger == MERGE_ORDERED_KIND || f->merger == 0 ? PyList_New(n)
                                                                     : Py_NewRef(Py_None);
    if (f->positions == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyList_SET_ITEM(f->parts, i, PyBytes_FromStringAndSize(NULL, 0));
        if (PyList_GET_ITEM(f->parts, i) == NULL)
            goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *group = PyList_GET_ITEM(grouped, i);
        if (!PyTuple_Check(group) || PyTuple_GET_SIZE(group) != 3) {
            PyErr_SetString(PyExc_TypeError, "group_keys: (shard, piece, where) expected");
            goto done;
        }
        if (f->positions != Py_None)
            PyList_SET_ITEM(f->positions, i, Py_NewRef(PyTuple_GET_ITEM(group, 2)));
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *group = PyList_GET_ITEM(grouped, i);
        Py_ssize_t shard = PyLong_AsSsize_t(PyTuple_GET_ITEM(group, 0));
        if (shard < 0 || shard >= PyList_GET_SIZE(conns)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_IndexError, "fan-out to an unknown shard");
            goto done;
        }
        FanPartObject *part = PyObject_GC_New(FanPartObject, &FanPartType);
        if (part == NULL)
            goto done;
        part->fan = Py_NewRef((PyObject *)f);
        part->index = i;
        PyObject_GC_Track(part);
        int bad = backend_send(PyList_GET_ITEM(conns, shard), PyTuple_GET_ITEM(group, 1),
                               (PyObject *)part);
        Py_DECREF(part);
        if (bad < 0)
            goto done;
    }
    err = set_timed(p, shape); /* after the sends, as _send_fanout */
done:
    Py_XDECREF(f);
    Py_XDECREF(p);
    Py_DECREF(grouped);
    return err;
}

/* ClientConn.process's fast paths over ``data``: the bytes consumed (whole
 * requests), or -1 on error. */
static Py_ssize_t serve(ClientBaseObject *c, PyObject *data, PyObject *owner_bytes,
                        PyObject *conns, Py_ssize_t limit, long long max_args,
                        long long max_bulk) {
    const unsigned char *owner = (const unsigned char *)PyBytes_AS_STRING(owner_bytes);
    PyObject *client = (PyObject *)c;
    const char *s = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Py_ssize_t pos = 0;
    PyObject *fifo = c->fifo, *turn = c->turn, *last = NULL;
    if (IS_NONE(fifo) || IS_NONE(turn)) {
        PyErr_SetString(PyExc_RuntimeError, "client has no fifo/turn");
        return -1;
    }
    Py_ssize_t queued = fifo_len(fifo);
    if (queued < 0)
        return -1;
    int sample = -1; /* the turn's sampling flag, read at the first request */
    while (pos < size && queued < limit) {
        Py_ssize_t end, starts[MAX_KEY_INDEX + 1], lens[MAX_KEY_INDEX + 1];
        long long argc;
        if (!frame_request(s, pos, size, max_args, max_bulk, &end, &argc, starts, lens))
            break;
        const FastCmd *fc = fast_cmd(s + starts[0], lens[0]);
        if (fc == NULL)
            break; /* not a single-key command as spelled: resolve() in Python decides */
        PyObject *entry = fc->entry;
        long min_args = fc->min_args, key = fc->key, step = fc->step;
        long long max = fc->max_args;
        PyObject *cmd = PyTuple_GET_ITEM(entry, 3);
        if (argc < min_args || argc > max)
            break; /* the arity is wrong: the Python path says so */
        if (key == 0) { /* MGET/MSET/DEL-like: split by shard (ClientConn._send_fanout) */
            if (step < 1 || (argc - 1) % step || (argc - 1) / step > PIECE_KEYS)
                break; /* a key without its value, or a large fan-out: the Python path */
            if (send_fanout(c, data, pos, end, argc, owner_bytes, conns, entry) < 0)
                goto fail;
            queued++;
            pos = end;
            Py_XSETREF(last, Py_NewRef(cmd));
            continue;
        }
        if (key > MAX_KEY_INDEX || argc <= key)
            break;
        unsigned int slot = hash_slot((const unsigned char *)s + starts[key], lens[key]);
        Py_ssize_t shard = owner[slot];
        if (shard >= PyList_GET_SIZE(conns))
            break;
        PyObject *conn = PyList_GET_ITEM(conns, shard);
        PyObject *raw = pos == 0 && end == size ? Py_NewRef(data)
                                                : PyBytes_FromStringAndSize(s + pos, end - pos);
        if (raw == NULL)
            goto fail;
        PendingObject *p = pending_new(client, cmd, raw, conn);
        if (p == NULL) {
            Py_DECREF(raw);
            goto fail;
        }
        int err = 0;
        if (sample < 0)
            err = (sample = turn_sample_due(turn)) < 0;
        if (!err && sample) { /* the first single-key request of the turn is timed */
            sample = 0;
            PyObject *now = turn_sampled(turn) < 0
                                ? NULL
                                : PyObject_CallNoArgs(PERF_COUNTER);
            if (now == NULL) {
                err = 1;
            } else {
                p->t0 = PyFloat_AsDouble(now);
                Py_DECREF(now);
                Py_SETREF(p->shape, Py_NewRef(SHAPE_SINGLE));
            }
        }
        if (!err)
            err = deque_append(fifo, (PyObject *)p) < 0;
        if (!err) {
            queued++;
            pos = end;
            Py_XSETREF(last, Py_NewRef(cmd));
            err = backend_send(conn, raw, (PyObject *)p) < 0;
        }
        Py_DECREF(raw);
        Py_DECREF(p);
        if (err)
            goto fail;
    }
    if (last != NULL) { /* CLIENT LIST cmd= */
        int err = IS_NONE(c->session) ? 0 : slot_set(c->session, s_last_cmd, &R_LAST_CMD, last);
        Py_DECREF(last);
        if (err < 0)
            return -1;
    }
    return pos;
fail:
    Py_XDECREF(last);
    return -1;
}

/* Whether ClientConn._data_received may hand these bytes to the fast path (as
 * process would take them): 1 with *owner, *conns (borrowed from the client's
 * fields) and the limits set, 0 for the Python path, -1 on error. */
static int hot_route(ClientBaseObject *c, PyObject **owner, PyObject **conns, Py_ssize_t *limit,
                     long long *max_args, long long *max_bulk) {
    int r;
    if (c->plain != Py_True || c->input_idle != Py_True || !IS_NONE(c->large) ||
        !IS_NONE(c->gather) || c->held == NULL || !PyList_Check(c->held) ||
        PyList_GET_SIZE(c->held) != 0 || IS_NONE(c->session) || IS_NONE(c->reader) ||
        IS_NONE(c->routes) || IS_NONE(c->running) || IS_NONE(c->pause))
        return 0;
    if ((r = slot_truth(c->session, s_closing, &R_CLOSING)) != 0 ||
        (r = slot_truth(c->pause, s_until, &R_UNTIL)) != 0)
        return r < 0 ? -1 : 0; /* closing, or a CLIENT PAUSE in force */
    PyObject *route = PyObject_GetAttr(c->routes, s_route);
    if (route == NULL)
        return -1;
    if (route != c->conns_route) { /* a new route: ClientConn._bind binds it (hot_owner too) */
        PyObject *bound = PyObject_CallMethodOneArg((PyObject *)c, s_bind, route);
        Py_XDECREF(bound);
        if (bound == NULL) {
            Py_DECREF(route);
            return -1;
        }
    }
    Py_DECREF(route);
    /* hot_owner: the route's slot owners, None while slots migrate (all via dispatch) */
    if (c->hot_owner == NULL || !PyBytes_Check(c->hot_owner) ||
        PyBytes_GET_SIZE(c->hot_owner) != SLOTS || c->conns == NULL || !PyList_Check(c->conns))
        return 0;
    PyObject *config = PyObject_GetAttr(c->running, s_config);
    if (config == NULL)
        return -1;
    if (config != c->hot_config) { /* the running config changed: its max_pending_per_client */
        PyObject *router = PyObject_GetAttr(config, s_router);
        PyObject *max = router == NULL ? NULL : PyObject_GetAttr(router, s_max_pending);
        Py_XDECREF(router);
        Py_ssize_t v = max == NULL ? -1 : PyLong_AsSsize_t(max);
        Py_XDECREF(max);
        if (v < 0 && PyErr_Occurred()) {
            Py_DECREF(config);
            return -1;
        }
        c->hot_limit = v;
        Py_XSETREF(c->hot_config, Py_NewRef(config));
    }
    Py_DECREF(config);
    if (c->reader != c->hot_reader) { /* the reader's limits, fixed when it was made */
        PyObject *ma = PyObject_GetAttr(c->reader, s_max_args);
        PyObject *mb = ma == NULL ? NULL : PyObject_GetAttr(c->reader, s_max_bulk);
        long long a = ma == NULL ? -1 : PyLong_AsLongLong(ma);
        long long bulk = mb == NULL ? -1 : PyLong_AsLongLong(mb);
        Py_XDECREF(ma);
        Py_XDECREF(mb);
        if (PyErr_Occurred())
            return -1;
        c->hot_max_args = a;
        c->hot_max_bulk = bulk;
        Py_XSETREF(c->hot_reader, Py_NewRef(c->reader));
    }
    *max_args = c->hot_max_args;
    *max_bulk = c->hot_max_bulk;
    *owner = c->hot_owner;
    *conns = c->conns;
    *limit = c->hot_limit;
    return 1;
}

/* ClientBase.data_received: ClientConn._data_received (the reference) with
 * process's fast path in C first; whatever it leaves goes to ClientConn._feed
 * from that byte. */
static PyObject *client_data_received(PyObject *client, PyObject *data) {
    if (!PyBytes_Check(data) || FAST_TABLE == NULL)
        return PyObject_CallMethodOneArg(client, s_py_data_received, data);
    ClientBaseObject *c = CB(client);
    if (IS_NONE(c->transport))
        Py_RETURN_NONE;
    if (IS_NONE(c->stats) || IS_NONE(c->session) || IS_NONE(c->loop))
        return PyObject_CallMethodOneArg(client, s_py_data_received, data);
    if (count_bytes(c->io, c->stats, 0, PyBytes_GET_SIZE(data)) < 0)
        return NULL;
    PyObject *now = loop_time(c->loop);
    int r = now == NULL ? -1 : slot_set(c->session, s_last_at, &R_LAST_AT, now); /* idle= */
    Py_XDECREF(now);
    if (r < 0)
        return NULL;
    PyObject *owner, *conns, *rest;
    Py_ssize_t limit;
    long long max_args, max_bulk;
    r = hot_route(c, &owner, &conns, &limit, &max_args, &max_bulk);
    if (r < 0)
        return NULL;
    if (r == 0) {
        rest = Py_NewRef(data);
    } else {
        Py_INCREF(owner); /* held across serve: a route change in a callback frees nothing */
        Py_INCREF(conns);
        Py_ssize_t used = serve(c, data, owner, conns, limit, max_args, max_bulk);
        Py_DECREF(owner);
        Py_DECREF(conns);
        if (used < 0)
            return NULL;
        if (used == PyBytes_GET_SIZE(data)) { /* all of it: nothing for the Python path */
            Py_ssize_t queued = fifo_len(c->fifo);
            if (queued < 0 || (queued >= limit && call_method0(client, s_update_reading) < 0))
                return NULL;
            if (!IS_NONE(c->turn) && turn_call(c->turn, Turn_flush_requests, s_flush_requests) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + used,
                                         PyBytes_GET_SIZE(data) - used);
        if (rest == NULL)
            return NULL;
    }
    PyObject *res = PyObject_CallMethodOneArg(client, s_feed, rest);
    Py_DECREF(rest);
    return res;
}

/* ------------------------------------------------------------------ replies */

/* RouterStats.count(cmd, reply), inlined when the command has its row and the
 * reply is not an error (row[0] += 1); the method otherwise. */
static int count_reply(PyObject *stats, PyObject *rows, PyObject *cmd, PyObject *reply) {
    PyObject *row = PyDict_GetItemWithError(rows, cmd); /* borrowed */
    if (row == NULL && PyErr_Occurred())
        return -1;
    if (row == NULL || !PyList_Check(row) || PyList_GET_SIZE(row) == 0 ||
        (PyBytes_GET_SIZE(reply) > 0 && PyBytes_AS_STRING(reply)[0] == '-')) {
        PyObject *r = PyObject_CallMethodObjArgs(stats, s_count, cmd, reply, NULL);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    PyObject *n = PyNumber_Add(PyList_GET_ITEM(row, 0), ONE);
    if (n == NULL)
        return -1;
    return PyList_SetItem(row, 0, n); /* steals n, drops the old count */
}

/* ClientConn._take_ready: every answered reply at the head of the FIFO, counted,
 * joined (a new reference), None when there is none, NULL on error. */
static PyObject *take_ready(PyObject *fifo, PyObject *stats) {
    PyObject *rows = PyObject_GetAttr(stats, s_commands);
    if (rows == NULL)
        return NULL;
    if (!PyDict_Check(rows)) {
        Py_DECREF(rows);
        PyErr_SetString(PyExc_TypeError, "stats.commands is not a dict");
        return NULL;
    }
    PyObject *first = NULL, *out = NULL; /* the list only from a second reply on */
    PyObject *result = NULL;
    for (;;) {
        Py_ssize_t n = fifo_len(fifo);
        if (n < 0)
            goto done;
        if (n == 0)
            break;
        PyObject *head = PySequence_GetItem(fifo, 0);
        if (head == NULL)
            goto done;
        PyObject *reply, *cmd;
        if (Py_IS_TYPE(head, &PendingType)) {
            PendingObject *p = (PendingObject *)head;
            reply = IS_NONE(p->reply) ? NULL : Py_NewRef(p->reply);
            cmd = IS_NONE(p->cmd) ? NULL : Py_NewRef(p->cmd);
        } else { /* another kind of reply slot: its attributes */
            reply = PyObject_GetAttr(head, s_reply);
            cmd = reply == NULL ? NULL : PyObject_GetAttr(head, s_cmd);
            if (reply == NULL || cmd == NULL) {
                Py_XDECREF(reply);
                Py_DECREF(head);
                goto done;
            }
            if (reply == Py_None)
                Py_CLEAR(reply);
            if (cmd == Py_None)
                Py_CLEAR(cmd);
        }
        Py_DECREF(head);
        if (reply == NULL || !PyBytes_Check(reply)) {
            Py_XDECREF(reply);
            Py_XDECREF(cmd);
            break; /* not answered yet: the replies after it wait */
        }
        PyObject *popped = deque_popleft(fifo);
        int err = popped == NULL ? -1 : 0;
        Py_XDECREF(popped);
        if (err == 0 && first == NULL) {
            first = Py_NewRef(reply);
        } else if (err == 0) {
            if (out == NULL && (out = PyList_New(0)) != NULL && PyList_Append(out, first) < 0)
                Py_CLEAR(out);
            err = out == NULL ? -1 : PyList_Append(out, reply);
        }
        if (err == 0 && cmd != NULL)
            err = count_reply(stats, rows, cmd, reply);
        Py_DECREF(reply);
        Py_XDECREF(cmd);
        if (err < 0)
            goto done;
    }
    result = out != NULL ? join_bytes(out) : first != NULL ? Py_NewRef(first) : Py_NewRef(Py_None);
done:
    Py_XDECREF(first);
    Py_XDECREF(out);
    Py_DECREF(rows);
    return result;
}

/* ClientBase.flush: ClientConn._flush (the reference), with _take_ready in C
 * unless CLIENT REPLY OFF/SKIP drops replies. */
static PyObject *client_flush(PyObject *client, PyObject *unused) {
    ClientBaseObject *c = CB(client);
    Py_XSETREF(c->dirty, Py_NewRef(Py_False));
    if (IS_NONE(c->transport))
        Py_RETURN_NONE;
    if (IS_NONE(c->fifo) || IS_NONE(c->stats))
        return PyObject_CallMethodNoArgs(client, s_py_flush);
    PyObject *transport = Py_NewRef(c->transport);
    PyObject *fifo = Py_NewRef(c->fifo), *stats = Py_NewRef(c->stats), *result = NULL;
    PyObject *data = IS_NONE(c->dropped) ? take_ready(fifo, stats)
                                         : PyObject_CallMethodNoArgs(client, s_take_ready);
    if (data == NULL)
        goto done;
    if (data != Py_None) {
        if (count_bytes(c->io, stats, 1, PyBytes_Check(data) ? PyBytes_GET_SIZE(data)
                                                             : PyObject_Length(data)) < 0)
            goto done;
        PyObject *r = PyObject_CallMethodOneArg(transport, s_write, data);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
        if (c->out_paused == Py_True) {
            PyObject *over = PyObject_CallMethodOneArg(client, s_over_output_limit, transport);
            if (over == NULL)
                goto done;
            int closed = PyObject_IsTrue(over);
            Py_DECREF(over);
            if (closed != 0) {
                if (closed > 0)
                    result = Py_NewRef(Py_None);
                goto done;
            }
        }
    }
    Py_ssize_t left = fifo_len(fifo);
    if (left < 0)
        goto done;
    if (left == 0 && !IS_NONE(c->session)) {
        int closing = slot_truth(c->session, s_closing, &R_CLOSING);
        if (closing < 0)
            goto done;
        if (closing) {
            if (call_method0(transport, s_close) == 0)
                result = Py_NewRef(Py_None);
            goto done;
        }
    }
    if (c->read_paused == Py_True && call_method0(client, s_update_reading) < 0)
        goto done;
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(data);
    Py_DECREF(stats);
    Py_DECREF(fifo);
    Py_DECREF(transport);
    return result;
}

/* BackendConn._data_received's loop over ``data`` (nothing buffered before it):
 * complete replies to the next waiters; the bytes consumed, or -1. */
static Py_ssize_t deliver(BackendBaseObject *b, PyObject *data) {
    const char *s = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Py_ssize_t pos = 0;
    PyObject *waiting = b->waiting;
    if (waiting == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "backend has no waiting");
        return -1;
    }
    Py_INCREF(waiting);
    while (pos < size) {
        Py_ssize_t end;
        if (frame_reply(s, pos, size, &end) != FRAME_DONE)
            break; /* partial, or one the reference frames */
        Py_ssize_t left = fifo_len(waiting);
        if (left <= 0) {
            if (left < 0)
                goto fail;
            break; /* a reply nobody waits for: the Python path says so */
        }
        int readonly = end - pos >= 9 && memcmp(s + pos, "-READONLY", 9) == 0;
        PyObject *raw = pos == 0 && end == size ? Py_NewRef(data)
                                                : PyBytes_FromStringAndSize(s + pos, end - pos);
        if (raw == NULL)
            goto fail;
        PyObject *waiter = deque_popleft(waiting);
        int err = waiter == NULL ? -1 : answer(waiter, raw);
        Py_XDECREF(waiter);
        Py_DECREF(raw);
        pos = end;
        if (err < 0)
            goto fail;
        if (readonly && !IS_NONE(b->hints) && call_method0(b->hints, s_hint_topology) < 0)
            goto fail; /* a demoted master: ask for the topology now */
    }
    Py_DECREF(waiting);
    return pos;
fail:
    Py_DECREF(waiting);
    return -1;
}

/* BackendBase.data_received: BackendConn._data_received (the reference) for a
 * live connection with no partial reply buffered: complete replies to their
 * waiters in C, the rest to the reference from that byte. */
static PyObject *backend_data_received(PyObject *conn, PyObject *data) {
    BackendBaseObject *b = BB(conn);
    if (!PyBytes_Check(data) || b->retired != Py_False || IS_NONE(b->scanner))
        return PyObject_CallMethodOneArg(conn, s_py_data_received, data);
    PyObject *buf = slot_get(b->scanner, s_b, &R_SCANNER_B);
    int empty = buf == NULL ? -1 : buffer_empty(buf);
    Py_XDECREF(buf);
    if (empty <= 0)
        return empty < 0 ? NULL : PyObject_CallMethodOneArg(conn, s_py_data_received, data);
    Py_INCREF(conn); /* a callback may drop the last other reference */
    PyObject *result = NULL;
    Py_ssize_t used = deliver(b, data);
    if (used < 0)
        goto done;
    if (used < PyBytes_GET_SIZE(data)) {
        PyObject *rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + used,
                                                   PyBytes_GET_SIZE(data) - used);
        if (rest != NULL) {
            result = PyObject_CallMethodOneArg(conn, s_py_data_received, rest);
            Py_DECREF(rest);
        }
        goto done;
    }
    if (set_now(b->loop, &b->progress_at) < 0)
        goto done;
    if (!IS_NONE(b->turn) && turn_call(b->turn, Turn_flush_replies, s_flush_replies) < 0)
        goto done;
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(conn);
    return result;
}

/* BackendBase.send(raw, waiter): BackendConn._send (the reference). */
static PyObject *backend_send_method(PyObject *conn, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send(raw, waiter)");
        return NULL;
    }
    if (backend_queue(conn, args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* BackendBase.flush: BackendConn._flush (the reference): what this turn queued,
 * in one write. */
static PyObject *backend_flush(PyObject *conn, PyObject *unused) {
    BackendBaseObject *b = BB(conn);
    Py_XSETREF(b->dirty, Py_NewRef(Py_False));
    if (b->state != STATE_UP || b->out == NULL)
        Py_RETURN_NONE;
    if (!PyList_Check(b->out) || IS_NONE(b->transport))
        return PyObject_CallMethodNoArgs(conn, s_py_flush);
    if (PyList_GET_SIZE(b->out) == 0)
        Py_RETURN_NONE;
    PyObject *data = join_bytes(b->out);
    if (data == NULL)
        return NULL;
    PyObject *transport = Py_NewRef(b->transport);
    PyObject *r = PyObject_CallMethodOneArg(transport, s_write, data);
    Py_DECREF(transport);
    Py_DECREF(data);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    Py_XSETREF(b->out, fresh);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ the base types */

#define CF(name, field, doc) {name, T_OBJECT, offsetof(ClientBaseObject, field), 0, doc}

static PyMemberDef ClientBase_members[] = {
    CF("fifo", fifo, "reply slots, in request order"),
    CF("turn", turn, "the LoopTurn replies are flushed in"),
    CF("session", session, "the client's Session"),
    CF("stats", stats, "the metrics counters"),
    CF("transport", transport, "the client socket, None once closed"),
    CF("loop", loop, "the event loop"),
    CF("state", state, "the ClientState (modes)"),
    CF("held", held, "requests parsed, not yet dispatched"),
    CF("large", large, "a large fan-out being split"),
    CF("gather", gather, "a gather/walk/move/hold the next requests wait for"),
    CF("reader", reader, "the RequestReader"),
    CF("routes", routes, "the route table"),
    CF("running", running, "the running config"),
    CF("ports", ports, "ClientPorts"),
    CF("pause", pause, "the router-wide CLIENT PAUSE"),
    CF("dirty", dirty, "in the turn's dirty list"),
    CF("dropped", dropped, "replies CLIENT REPLY OFF/SKIP drops"),
    CF("out_paused", out_paused, "the socket's write buffer is full"),
    CF("read_paused", read_paused, "reading is paused"),
    CF("_conns", conns, "a connection per shard under _conns_route"),
    CF("_conns_route", conns_route, "the route _conns was bound for"),
    CF("plain", plain, "ClientState.plain, mirrored"),
    CF("input_idle", input_idle, "nothing buffered in the reader"),
    CF("hot_owner", hot_owner, "_conns_route's slot owners, None while slots migrate"),
    CF("hot_config", hot_config, "the config hot_limit was read from"),
    CF("io", io, "the ByteCounters of stats (RouterStats.io)"),
    CF("hot_reader", hot_reader, "the reader hot_max_args/hot_max_bulk were read from"),
    {"hot_max_args", T_LONGLONG, offsetof(ClientBaseObject, hot_max_args), 0,
     "max_args of hot_reader"},
    {"hot_max_bulk", T_LONGLONG, offsetof(ClientBaseObject, hot_max_bulk), 0,
     "max_bulk of hot_reader"},
    {"hot_limit", T_PYSSIZET, offsetof(ClientBaseObject, hot_limit), 0,
     "max_pending_per_client of hot_config"},
    {NULL, 0, 0, 0, NULL},
};

#define BF(name, field, doc) {name, T_OBJECT, offsetof(BackendBaseObject, field), 0, doc}

static PyMemberDef BackendBase_members[] = {
    BF("state", state, "connecting, up, down, closed"),
    BF("waiting", waiting, "a waiter per request written, in order"),
    BF("out", out, "requests queued this loop turn"),
    BF("dirty", dirty, "in the turn's dirty list"),
    BF("turn", turn, "the LoopTurn output is flushed in"),
    BF("loop", loop, "the event loop (cached)"),
    BF("transport", transport, "the socket, None while not connected"),
    BF("progress_at", progress_at, "loop time of the last progress"),
    BF("down_reply", down_reply, "the error a request gets while down"),
    BF("hints", hints, "TopologyHint"),
    BF("retired", retired, "out of the route"),
    BF("scanner", scanner, "the ReplyScanner"),
    {NULL, 0, 0, 0, NULL},
};

/* The object fields of a base, in struct order (first .. last, contiguous), visited
 * and cleared as one array. */
#define OBJ_FIELDS(o, first, last) (&(o)->first), (&(o)->last - &(o)->first + 1)
_Static_assert(offsetof(ClientBaseObject, hot_limit) ==
                   offsetof(ClientBaseObject, fifo) + 27 * sizeof(PyObject *),
               "ClientBase's object fields are fifo .. hot_reader, contiguous");
_Static_assert(sizeof(BackendBaseObject) ==
                   offsetof(BackendBaseObject, state) + 12 * sizeof(PyObject *),
               "BackendBase's object fields are state .. scanner, contiguous");

static int visit_all(PyObject **fields, Py_ssize_t n, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < n; i++)
        Py_VISIT(fields[i]);
    return 0;
}

static void clear_all(PyObject **fields, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        Py_CLEAR(fields[i]);
}

static int ClientBase_traverse(ClientBaseObject *c, visitproc visit, void *arg) {
    return visit_all(OBJ_FIELDS(c, fifo, hot_reader), visit, arg);
}

static int ClientBase_clear(ClientBaseObject *c) {
    clear_all(OBJ_FIELDS(c, fifo, hot_reader));
    return 0;
}

static void ClientBase_dealloc(ClientBaseObject *c) {
    PyObject_GC_UnTrack(c);
    ClientBase_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int BackendBase_traverse(BackendBaseObject *b, visitproc visit, void *arg) {
    return visit_all(OBJ_FIELDS(b, state, scanner), visit, arg);
}

static int BackendBase_clear(BackendBaseObject *b) {
    clear_all(OBJ_FIELDS(b, state, scanner));
    return 0;
}

static void BackendBase_dealloc(BackendBaseObject *b) {
    PyObject_GC_UnTrack(b);
    BackendBase_clear(b);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyMethodDef ClientBase_methods[] = {
    {"data_received", (PyCFunction)client_data_received, METH_O,
     "ClientConn._data_received with process's single-key fast path in C"},
    {"flush", (PyCFunction)client_flush, METH_NOARGS,
     "ClientConn._flush with _take_ready in C: every ready reply, in one write"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef BackendBase_methods[] = {
    {"data_received", (PyCFunction)backend_data_received, METH_O,
     "BackendConn._data_received with the reply loop in C"},
    {"flush", (PyCFunction)backend_flush, METH_NOARGS,
     "BackendConn._flush in C: what this loop turn queued, in one write"},
    {"send", (PyCFunction)(void (*)(void))backend_send_method, METH_FASTCALL,
     "BackendConn._send in C: queue one request for the end of the loop turn"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ClientBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.ClientBase",
    .tp_basicsize = sizeof(ClientBaseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ClientConn's hot fields, data_received and flush in C (router.wire.client).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)ClientBase_dealloc,
    .tp_traverse = (traverseproc)ClientBase_traverse,
    .tp_clear = (inquiry)ClientBase_clear,
    .tp_methods = ClientBase_methods,
    .tp_members = ClientBase_members,
};

static PyTypeObject BackendBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router.wire._hot.BackendBase",
    .tp_basicsize = sizeof(BackendBaseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "BackendConn's hot fields, data_received and flush in C (router.wire.backend).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)BackendBase_dealloc,
    .tp_traverse = (traverseproc)BackendBase_traverse,
    .tp_clear = (inquiry)BackendBase_clear,
    .tp_methods = BackendBase_methods,
    .tp_members = BackendBase_members,
};

/* ------------------------------------------------------------------ module */

static PyObject *setup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 13 || !PyDict_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_Check(args[2]) || !PyLong_Check(args[12])) {
        PyErr_SetString(PyExc_TypeError,
                        "setup(fast_table, backend_type, deque_type, up, down, closed, single, "
                        "perf_counter, group_keys, merge_ordered, merge_fallback, unsure, "
                        "piece_keys)");
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t i = 0;
    while (PyDict_Next(args[0], &i, &key, &value)) {
        if (!PyBytes_Check(key) || !PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 7 ||
            !PyLong_Check(PyTuple_GET_ITEM(value, 0)) || !PyLong_Check(PyTuple_GET_ITEM(value, 1)) ||
            !PyLong_Check(PyTuple_GET_ITEM(value, 2)) || !PyLong_Check(PyTuple_GET_ITEM(value, 4)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(value, 5)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(value, 6))) {
            PyErr_SetString(PyExc_TypeError,
                            "fast_table: {bytes: (min_args, max_args, fast_key, name, "
                            "split_step, merger, shape)}");
            return NULL;
        }
    }
    PyObject *append = PyObject_GetAttrString(args[2], "append");
    PyObject *popleft = append == NULL ? NULL : PyObject_GetAttrString(args[2], "popleft");
    if (popleft == NULL) {
        Py_XDECREF(append);
        return NULL;
    }
    if (DEQUE_TYPE != NULL && PyType_IsSubtype((PyTypeObject *)args[2], DEQUE_TYPE)) {
        Py_INCREF(args[2]); /* a deque's length is its size field (fifo_len) */
        Py_SETREF(DEQUE_TYPE, (PyTypeObject *)args[2]);
    } else {
        Py_CLEAR(DEQUE_TYPE); /* not a deque: len() */
    }
    Py_XSETREF(DEQUE_APPEND, append);
    Py_XSETREF(DEQUE_POPLEFT, popleft);
    PyObject *table = PyDict_Copy(args[0]); /* ours: FAST_CMDS points into its keys and
                                               values, which the caller can no longer change */
    if (table == NULL)
        return NULL;
    if (build_fast_cmds(table) < 0) {
        Py_DECREF(table);
        return NULL;
    }
    Py_XSETREF(FAST_TABLE, table); /* the old table outlived the swap of FAST_CMDS */
    Py_XSETREF(BACKEND_TYPE, Py_NewRef(args[1]));
    Py_XSETREF(STATE_UP, Py_NewRef(args[3]));
    Py_XSETREF(STATE_DOWN, Py_NewRef(args[4]));
    Py_XSETREF(STATE_CLOSED, Py_NewRef(args[5]));
    Py_XSETREF(SHAPE_SINGLE, Py_NewRef(args[6]));
    Py_XSETREF(PERF_COUNTER, Py_NewRef(args[7]));
    Py_XSETREF(GROUP_KEYS, Py_NewRef(args[8]));
    Py_XSETREF(MERGE_ORDERED, Py_NewRef(args[9]));
    Py_XSETREF(MERGE_FALLBACK, Py_NewRef(args[10]));
    Py_XSETREF(UNSURE_MARK, Py_NewRef(args[11]));
    PIECE_KEYS = PyLong_AsSsize_t(args[12]);
    Py_RETURN_NONE;
}

/* _slot_get(o, name) / _slot_set(o, name, v): the hot path's in-place slot access,
 * for the tests; ``name`` one of the attributes it reads that way. */
static SlotRef *slot_ref_named(PyObject *name) {
    struct { PyObject **name; SlotRef *ref; } refs[] = {
        {&s_last_at, &R_LAST_AT}, {&s_last_cmd, &R_LAST_CMD}, {&s_closing, &R_CLOSING},
        {&s_until, &R_UNTIL}, {&s_b, &R_SCANNER_B}, {&s_chunks, &R_CHUNKS},
        {&s_pos, &R_POS}, {&s_buf, &R_BUF},
    };
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
        if (PyUnicode_Check(name) && PyUnicode_Compare(name, *refs[i].name) == 0)
            return refs[i].ref;
    PyErr_SetString(PyExc_ValueError, "not a slot the hot path reads in place");
    return NULL;
}

static PyObject *test_slot_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    SlotRef *ref = nargs == 2 ? slot_ref_named(args[1]) : NULL;
    if (nargs != 2)
        PyErr_SetString(PyExc_TypeError, "_slot_get(o, name)");
    return ref == NULL ? NULL : slot_get(args[0], args[1], ref);
}

static PyObject *test_slot_set(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    SlotRef *ref = nargs == 3 ? slot_ref_named(args[1]) : NULL;
    if (nargs != 3)
        PyErr_SetString(PyExc_TypeError, "_slot_set(o, name, value)");
    if (ref == NULL || slot_set(args[0], args[1], ref, args[2]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"_slot_get", (PyCFunction)(void (*)(void))test_slot_get, METH_FASTCALL,
     "o.<name> as the hot path reads it (tests)"},
    {"_slot_set", (PyCFunction)(void (*)(void))test_slot_set, METH_FASTCALL,
     "o.<name> = value as the hot path writes it (tests)"},
    {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL,
     "setup(fast_table, backend_type, deque_type, up, down, closed, single, perf_counter, "
     "group_keys, merge_ordered, merge_fallback, unsure, piece_keys)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "router.wire._hot",
    "The router's hot path in C (see router/wire/_hot.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

#define INTERN(var, text)                                                                   \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                   \
        return NULL;

PyMODINIT_FUNC PyInit__hot(void) {
    crc16_init();
    INTERN(s_last_cmd, "last_cmd");
    INTERN(s_sample_due, "sample_due");
    INTERN(s_dirty_backends, "dirty_backends");
    INTERN(s_dirty_clients, "dirty_clients");
    INTERN(s_time, "time");
    INTERN(s_now, "now");
    INTERN(s_send, "send");
    INTERN(s_append, "append");
    INTERN(s_on_reply, "on_reply");
    INTERN(s_hint_topology, "hint_topology");
    INTERN(s_parker, "parker");
    INTERN(s_park, "park");
    INTERN(s_observe, "observe");
    INTERN(s_commands, "commands");
    INTERN(s_count, "count");
    INTERN(s_reply, "reply");
    INTERN(s_cmd, "cmd");
    INTERN(s_bytes_in, "bytes_in");
    INTERN(s_bytes_out, "bytes_out");
    INTERN(s_last_at, "last_at");
    INTERN(s_closing, "closing");
    INTERN(s_b, "_b");
    INTERN(s_chunks, "chunks");
    INTERN(s_pos, "pos");
    INTERN(s_buf, "buf");
    INTERN(s_until, "until");
    INTERN(s_route, "route");
    INTERN(s_config, "config");
    INTERN(s_router, "router");
    INTERN(s_max_pending, "max_pending_per_client");
    INTERN(s_max_args, "max_args");
    INTERN(s_max_bulk, "max_bulk");
    INTERN(s_feed, "_feed");
    INTERN(s_update_reading, "_update_reading");
    INTERN(s_flush, "flush");
    INTERN(s_write, "write");
    INTERN(s_close, "close");
    INTERN(s_py_flush, "_flush");
    INTERN(s_py_data_received, "_data_received");
    INTERN(s_take_ready, "_take_ready");
    INTERN(s_over_output_limit, "_over_output_limit");
    INTERN(s_bind, "_bind");
    INTERN(s_proto, "proto");
    INTERN(s_call_soon, "call_soon");
    INTERN(s_busy, "busy");
    INTERN(s_flush_requests, "flush_requests");
    INTERN(s_latency, "latency");
    INTERN(s_flush_replies, "flush_replies");
    INTERN(s_replies_all_in, "replies_all_in");
    /* what setup() sets, usable before it runs (a BackendConn without a client module) */
    PyObject *collections = PyImport_ImportModule("collections");
    PyObject *deque = collections == NULL ? NULL : PyObject_GetAttrString(collections, "deque");
    Py_XDECREF(collections);
    PyObject *time_module = PyImport_ImportModule("time");
    PERF_COUNTER = time_module == NULL ? NULL : PyObject_GetAttrString(time_module, "perf_counter");
    Py_XDECREF(time_module);
    DEQUE_TYPE = deque != NULL && PyType_Check(deque) ? (PyTypeObject *)Py_NewRef(deque) : NULL;
    DEQUE_APPEND = deque == NULL ? NULL : PyObject_GetAttrString(deque, "append");
    DEQUE_POPLEFT = deque == NULL ? NULL : PyObject_GetAttrString(deque, "popleft");
    Py_XDECREF(deque);
    if (PERF_COUNTER == NULL || DEQUE_APPEND == NULL || DEQUE_POPLEFT == NULL)
        return NULL;
    INTERN(STATE_UP, "up"); /* router.wire.backend's states (interned literals: same objects) */
    INTERN(STATE_DOWN, "down");
    INTERN(STATE_CLOSED, "closed");
    if ((ONE = PyLong_FromLong(1)) == NULL || (OK_BYTES = PyBytes_FromString("+OK\r\n")) == NULL ||
        (NIL2_BYTES = PyBytes_FromString("$-1\r\n")) == NULL ||
        (NIL3_BYTES = PyBytes_FromString("_\r\n")) == NULL)
        return NULL;
    if (PyType_Ready(&PendingType) < 0 || PyType_Ready(&FanType) < 0 ||
        PyType_Ready(&FanPartType) < 0 || PyType_Ready(&TurnType) < 0 ||
        PyType_Ready(&CountersType) < 0 || PyType_Ready(&HistType) < 0 ||
        PyType_Ready(&ClientBaseType) < 0 ||
        PyType_Ready(&BackendBaseType) < 0)
        return NULL;
    CLIENT_FLUSH = PyDict_GetItemWithError(ClientBaseType.tp_dict, s_flush);
    BACKEND_FLUSH = PyDict_GetItemWithError(BackendBaseType.tp_dict, s_flush);
    if (CLIENT_FLUSH == NULL || BACKEND_FLUSH == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the bases have no flush");
        return NULL;
    }
    Py_INCREF(CLIENT_FLUSH);
    Py_INCREF(BACKEND_FLUSH);
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddObjectRef(m, "Pending", (PyObject *)&PendingType) < 0 ||
                      PyModule_AddObjectRef(m, "ClientBase", (PyObject *)&ClientBaseType) < 0 ||
                      PyModule_AddObjectRef(m, "LoopTurn", (PyObject *)&TurnType) < 0 ||
                      PyModule_AddObjectRef(m, "ByteCounters", (PyObject *)&CountersType) < 0 ||
                      PyModule_AddObjectRef(m, "Histogram", (PyObject *)&HistType) < 0 ||
                      PyModule_AddObjectRef(m, "BackendBase", (PyObject *)&BackendBaseType) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
