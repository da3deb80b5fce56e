/*
 * slotwarden.resp._speedups — C versions of the router's per-request byte work.
 *
 * Optional: setup.py builds it when a C compiler is there; without it the
 * router runs the pure-Python code (slotwarden/resp, router/decide/merge.py),
 * which stays the reference. `slotwarden.resp.accel` is the one place that
 * picks C or Python. Every function here either returns exactly what the
 * Python reference returns, or returns the one marker ``UNSURE`` (a module
 * attribute) so that the caller falls back to the reference for that
 * input. Nothing here raises on malformed input: deciding what is an
 * error, and its text, is the reference's job.
 *
 *   parse_requests(buf, pos, limit, max_args, max_bulk, max_inline)
 *       -> (requests, pos, need, partial)   canonical multibulk requests
 *   parse_bulks(buf, pos, n, max_bulk, max_inline, args) -> (pos, need)
 *                                     resumes a partial request where it stopped
 *   scan_replies(buf, pos, out) -> (pos, need)
 *                                     frames complete replies (RESP2/3)
 *   split_array(raw) -> list | None | UNSURE
 *   merge_ordered(parts, positions, total, nil) -> bytes | UNSURE
 *   group_keys(args, step, owner) -> int | list[(shard, piece, key_indexes)]
 *   key_slot(key) -> int
 *
 * ``need`` protocol (parse_requests, parse_bulks, scan_replies): 0 = stopped at the end of
 * the buffer or at ``limit``; > 0 = the item at ``pos`` is incomplete and
 * needs at least ``need`` bytes from ``pos``; UNSURE = the item at ``pos`` is not
 * one this module frames (inline request, non-canonical length, unknown type,
 * a limit broken): the reference parser takes it from ``pos``.
 *
 * Invariant: nothing reads outside [0, len(buf)); every length is checked
 * before it is used; numbers longer than 18 digits are "unsure".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_frame.h"

static PyObject *UNSURE;     /* the one "unsure: ask the reference" marker */
static PyObject *OK_REPLY;   /* b"+OK\r\n" */
static PyObject *NIL_REPLY;  /* b"$-1\r\n" */

static inline PyObject *slice(PyObject *buf, const char *s, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = b - a;
    if (a == 0 && n == PyBytes_GET_SIZE(buf)) {
        Py_INCREF(buf);
        return buf;
    }
    if (n == 5) {
        if (memcmp(s + a, "+OK\r\n", 5) == 0) {
            Py_INCREF(OK_REPLY);
            return OK_REPLY;
        }
        if (memcmp(s + a, "$-1\r\n", 5) == 0) {
            Py_INCREF(NIL_REPLY);
            return NIL_REPLY;
        }
    }
    return PyBytes_FromStringAndSize(s + a, n);
}

static PyObject *scan_replies(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "scan_replies(buf: bytes, pos: int, out: list)");
        return NULL;
    }
    PyObject *buf = args[0];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    const char *s = PyBytes_AS_STRING(buf);
    Py_ssize_t size = PyBytes_GET_SIZE(buf);
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    Py_ssize_t need = 0;
    while (pos < size) {
        Py_ssize_t r;
        int st = frame_reply(s, pos, size, &r);
        if (st == FRAME_DONE) {
            PyObject *item = slice(buf, s, pos, r);
            if (item == NULL)
                return NULL;
            int err = PyList_Append(args[2], item);
            Py_DECREF(item);
            if (err < 0)
                return NULL;
            pos = r;
        } else {
            need = st == FRAME_MORE ? r : -1;
            break;
        }
    }
    if (need < 0)
        return Py_BuildValue("(nO)", pos, UNSURE);
    return Py_BuildValue("(nn)", pos, need);
}

/* Elements of the array at s[0:size): fills starts/ends (count of them).
 * 1 = done; 0 = not a complete array of that shape (None); -1 = unsure. */
static int array_items(const char *s, Py_ssize_t size, long long *count_out,
                       Py_ssize_t **bounds_out) {
    *bounds_out = NULL;
    if (size < 1 || s[0] != '*')
        return 0;
    Py_ssize_t nl = find_crlf(s, 1, size);
    if (nl < 0)
        return -1;
    long long count = plain_digits(s, 1, nl);
    if (count < 0 || count > size)
        return -1;
    Py_ssize_t *bounds = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * (size_t)(count ? count : 1));
    if (bounds == NULL)
        return -2;
    Py_ssize_t p = nl + 2;
    for (long long i = 0; i < count; i++) {
        Py_ssize_t r;
        if (p >= size) {
            PyMem_Free(bounds);
            return 0;
        }
        int st = frame_reply(s, p, size, &r);
        if (st != FRAME_DONE) {
            PyMem_Free(bounds);
            return st == FRAME_MORE ? 0 : -1;
        }
        bounds[2 * i] = p;
        bounds[2 * i + 1] = r;
        p = r;
    }
    if (p != size) {
        PyMem_Free(bounds);
        return 0;
    }
    *count_out = count;
    *bounds_out = bounds;
    return 1;
}

static PyObject *split_array(PyObject *self, PyObject *raw) {
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "split_array(raw: bytes)");
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(raw);
    long long count = 0;
    Py_ssize_t *bounds;
    int st = array_items(s, PyBytes_GET_SIZE(raw), &count, &bounds);
    if (st == -2)
        return PyErr_NoMemory();
    if (st == 0)
        Py_RETURN_NONE;
    if (st < 0)
        return Py_NewRef(UNSURE);
    PyObject *list = PyList_New((Py_ssize_t)count);
    if (list == NULL) {
        PyMem_Free(bounds);
        return NULL;
    }
    for (long long i = 0; i < count; i++) {
        PyObject *item = PyBytes_FromStringAndSize(s + bounds[2 * i], bounds[2 * i + 1] - bounds[2 * i]);
        if (item == NULL) {
            PyMem_Free(bounds);
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    PyMem_Free(bounds);
    return list;
}

/* 1 if s[a:b] is one element the reference moves unchanged: a bulk string
 * with a canonical length and its CRLF, a RESP2 nil ($-1) or a RESP3 null (_). */
static int plain_element(const char *s, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = b - a;
    if (n == 3 && s[a] == '_')
        return 1;
    if (n == 5 && memcmp(s + a, "$-1\r\n", 5) == 0)
        return 1;
    if (s[a] != '$')
        return 0;
    Py_ssize_t nl = find_crlf(s, a + 1, b);
    if (nl < 0)
        return 0;
    long long len = canonical_len(s, a + 1, nl);
    return len >= 0 && nl + 2 + len + 2 == b && s[b - 2] == '\r' && s[b - 1] == '\n';
}

/* merge_ordered(parts, positions, total, nil): part i is an array answering the
 * keys at positions[i]; the merged array in key order, or UNSURE when a part is
 * anything but an array of the expected length holding only bulk strings and
 * nils (the reference then decides: it re-encodes other element types, or says
 * what is wrong). */
static PyObject *merge_ordered(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyList_Check(args[0]) || !PyList_Check(args[1]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "merge_ordered(parts: list[bytes], positions: list[list[int]], total, nil)");
        return NULL;
    }
    PyObject *parts = args[0], *positions = args[1], *nil = args[3];
    Py_ssize_t total = PyLong_AsSsize_t(args[2]);
    if (total == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t nparts = PyList_GET_SIZE(parts);
    if (total < 0 || PyList_GET_SIZE(positions) != nparts) {
        PyErr_SetString(PyExc_ValueError, "parts and positions differ in length");
        return NULL;
    }
    const char **src = PyMem_Calloc((size_t)(total ? total : 1), sizeof(char *));
    Py_ssize_t *len = PyMem_Calloc((size_t)(total ? total : 1), sizeof(Py_ssize_t));
    PyObject *result = NULL;
    if (src == NULL || len == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nparts; i++) {
        PyObject *raw = PyList_GET_ITEM(parts, i);
        PyObject *where = PyList_GET_ITEM(positions, i);
        if (!PyBytes_Check(raw) || !PyList_Check(where)) {
            PyErr_SetString(PyExc_TypeError, "parts are bytes, positions lists of int");
            goto done;
        }
        const char *s = PyBytes_AS_STRING(raw);
        long long count;
        Py_ssize_t *bounds;
        int st = array_items(s, PyBytes_GET_SIZE(raw), &count, &bounds);
        if (st == -2) {
            PyErr_NoMemory();
            goto done;
        }
        if (st != 1) {
            result = UNSURE;
            Py_INCREF(result);
            goto done;
        }
        if (count != PyList_GET_SIZE(where)) {
            PyMem_Free(bounds);
            result = UNSURE;
            Py_INCREF(result);
            goto done;
        }
        for (long long k = 0; k < count; k++) {
            if (!plain_element(s, bounds[2 * k], bounds[2 * k + 1])) {
                PyMem_Free(bounds);
                result = UNSURE;
                Py_INCREF(result);
                goto done;
            }
            Py_ssize_t index = PyLong_AsSsize_t(PyList_GET_ITEM(where, (Py_ssize_t)k));
            if (index < 0 || index >= total) {
                PyMem_Free(bounds);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "position out of range");
                goto done;
            }
            src[index] = s + bounds[2 * k];
            len[index] = bounds[2 * k + 1] - bounds[2 * k];
        }
        PyMem_Free(bounds);
    }
    {
        char head[32];
        int hn = snprintf(head, sizeof head, "*%zd\r\n", total);
        Py_ssize_t out_len = hn;
        const char *nil_s = PyBytes_AS_STRING(nil);
        Py_ssize_t nil_n = PyBytes_GET_SIZE(nil);
        for (Py_ssize_t k = 0; k < total; k++)
            out_len += src[k] ? len[k] : nil_n;
        result = PyBytes_FromStringAndSize(NULL, out_len);
        if (result == NULL)
            goto done;
        char *o = PyBytes_AS_STRING(result);
        memcpy(o, head, (size_t)hn);
        o += hn;
        for (Py_ssize_t k = 0; k < total; k++) {
            if (src[k]) {
                memcpy(o, src[k], (size_t)len[k]);
                o += len[k];
            } else {
                memcpy(o, nil_s, (size_t)nil_n);
                o += nil_n;
            }
        }
    }
done:
    PyMem_Free(src);
    PyMem_Free(len);
    return result;
}

/* ------------------------------------------------------------------ requests */

/* The length on the line at s[p] (p < size) if it starts with c, is canonical
 * and within [min, max]: *next = where the line ends. Else -1 with *need set:
 * the bytes from start needed to see the whole line, or -1 when the line is
 * not one this module takes (what the reference checks: a line without CRLF
 * longer than max_inline is an error there). */
static inline long long length_line(const char *s, Py_ssize_t p, Py_ssize_t size, char c,
                                    long long min, long long max, Py_ssize_t max_inline,
                                    Py_ssize_t start, Py_ssize_t *need, Py_ssize_t *next) {
    if (s[p] != c) {
        *need = -1;
        return -1;
    }
    Py_ssize_t nl = find_crlf(s, p + 1, size);
    if (nl < 0) {
        *need = size - p > max_inline ? -1 : size - start + 1;
        return -1;
    }
    long long v = canonical_len(s, p + 1, nl);
    if (v < min || v > max) {
        *need = -1;
        return -1;
    }
    *next = nl + 2;
    return v;
}

/* Frames up to n bulk elements ($len CRLF payload CRLF) from s[*pos], appending
 * each payload to argv and moving *pos past it. Returns how many it framed, or
 * -1 on a Python error; *need: 0 = all n framed, > 0 = the element at *pos is
 * incomplete and needs that many bytes from *pos, -1 = the element at *pos is
 * not one this module frames (the reference says why). */
static Py_ssize_t frame_bulks(PyObject *argv, const char *s, Py_ssize_t *pos, Py_ssize_t size,
                              long long n, long long max_bulk, Py_ssize_t max_inline,
                              Py_ssize_t *need) {
    Py_ssize_t p = *pos;
    Py_ssize_t framed = 0;
    *need = 0;
    while (framed < n) {
        if (p >= size) {
            *need = 1;
            break;
        }
        Py_ssize_t payload;
        long long len = length_line(s, p, size, '$', 0, max_bulk, max_inline, p, need, &payload);
        if (len < 0)
            break;
        Py_ssize_t q = payload + (Py_ssize_t)len + 2;
        if (q > size) {
            *need = q - p;
            break;
        }
        PyObject *a = PyBytes_FromStringAndSize(s + payload, (Py_ssize_t)len);
        if (a == NULL)
            return -1;
        int err = PyList_Append(argv, a);
        Py_DECREF(a);
        if (err < 0)
            return -1;
        p = q;
        framed++;
    }
    *pos = p;
    return framed;
}

/* parse_requests(buf, pos, limit, max_args, max_bulk, max_inline)
 *   -> (list[(args, raw)], pos, need, partial)
 * Canonical multibulk requests only (what redis-py, redis-cli and
 * redis-benchmark send); anything else stops with need = UNSURE.
 * partial: None, or (start, count, args) when it stopped inside a request
 * whose count line (at start) and first len(args) arguments are framed: pos is
 * then just past those arguments and need counts from there, so the caller
 * keeps them and resumes with parse_bulks instead of framing them again.
 * Arguments are kept as they arrive, never allocated from the count line:
 * "*2147483647" alone costs nothing. */
static PyObject *parse_requests(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "parse_requests(buf: bytes, pos, limit, max_args, max_bulk, max_inline)");
        return NULL;
    }
    PyObject *buf = args[0];
    Py_ssize_t pos, limit, max_inline;
    long long max_args, max_bulk;
    if ((pos = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred())
        return NULL;
    if ((limit = PyLong_AsSsize_t(args[2])) == -1 && PyErr_Occurred())
        return NULL;
    if ((max_args = PyLong_AsLongLong(args[3])) == -1 && PyErr_Occurred())
        return NULL;
    if ((max_bulk = PyLong_AsLongLong(args[4])) == -1 && PyErr_Occurred())
        return NULL;
    if ((max_inline = PyLong_AsSsize_t(args[5])) == -1 && PyErr_Occurred())
        return NULL;
    const char *s = PyBytes_AS_STRING(buf);
    Py_ssize_t size = PyBytes_GET_SIZE(buf);
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    PyObject *partial = NULL;
    Py_ssize_t need = 0;
    while (pos < size && PyList_GET_SIZE(out) < limit) {
        Py_ssize_t start = pos;
        Py_ssize_t p;
        long long count = length_line(s, start, size, '*', 1, max_args, max_inline, start,
                                      &need, &p);
        if (count < 0)
            break;
        PyObject *argv = PyList_New(0);
        if (argv == NULL)
            goto fail;
        Py_ssize_t framed = frame_bulks(argv, s, &p, size, count, max_bulk, max_inline, &need);
        if (framed < 0) {
            Py_DECREF(argv);
            goto fail;
        }
        if (framed < count) { /* incomplete or unsure: keep what is framed */
            partial = Py_BuildValue("(nLN)", start, count, argv);
            if (partial == NULL)
                goto fail;
            pos = p;
            break;
        }
        PyObject *raw = slice(buf, s, start, p);
        PyObject *req = raw == NULL ? NULL : PyTuple_Pack(2, argv, raw);
        Py_DECREF(argv);
        Py_XDECREF(raw);
        if (req == NULL)
            goto fail;
        int err = PyList_Append(out, req);
        Py_DECREF(req);
        if (err < 0)
            goto fail;
        pos = p;
    }
    if (partial == NULL)
        partial = Py_NewRef(Py_None);
    return need < 0 ? Py_BuildValue("(NnON)", out, pos, UNSURE, partial)
                    : Py_BuildValue("(NnnN)", out, pos, need, partial);
fail:
    Py_XDECREF(partial);
    Py_DECREF(out);
    return NULL;
}

/* parse_bulks(buf, pos, n, max_bulk, max_inline, args) -> (pos, need)
 * Resumes a request parse_requests left partial: frames up to n more
 * arguments at pos, appending them to args; pos = past the last one framed;
 * need as frame_bulks (0: all n framed; > 0: bytes needed from pos; UNSURE). */
static PyObject *parse_bulks(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyBytes_Check(args[0]) || !PyList_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "parse_bulks(buf: bytes, pos, n, max_bulk, max_inline, args: list)");
        return NULL;
    }
    Py_ssize_t pos, max_inline;
    long long n, max_bulk;
    if ((pos = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred())
        return NULL;
    if ((n = PyLong_AsLongLong(args[2])) == -1 && PyErr_Occurred())
        return NULL;
    if ((max_bulk = PyLong_AsLongLong(args[3])) == -1 && PyErr_Occurred())
        return NULL;
    if ((max_inline = PyLong_AsSsize_t(args[4])) == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (pos < 0 || pos > size || n < 0) {
        PyErr_SetString(PyExc_ValueError, "pos or n out of range");
        return NULL;
    }
    Py_ssize_t need;
    if (frame_bulks(args[5], PyBytes_AS_STRING(args[0]), &pos, size, n, max_bulk, max_inline,
                    &need) < 0)
        return NULL;
    return need < 0 ? Py_BuildValue("(nO)", pos, UNSURE) : Py_BuildValue("(nn)", pos, need);
}

/* ------------------------------------------------------------------ keys */

/* Decimal digits of v (v >= 0). */
static inline int digits(Py_ssize_t v) {
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* Writes "<c><v>\r\n" at o (d = digits(v)); returns the bytes written. */
static inline Py_ssize_t put_line(char *o, char c, Py_ssize_t v, int d) {
    o[0] = c;
    for (int i = d; i > 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    o[d + 1] = '\r';
    o[d + 2] = '\n';
    return d + 3;
}

/* The encoded command of args[idx[0..n)] (idx[0] is the command name),
 * written straight into the bytes object. */
static PyObject *encode_indexed(PyObject *argv, const Py_ssize_t *idx, Py_ssize_t n) {
    Py_ssize_t total = digits(n) + 3;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(PyList_GET_ITEM(argv, idx[i]));
        total += digits(len) + 3 + len + 2;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, total);
    if (res == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(res);
    o += put_line(o, '*', n, digits(n));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyList_GET_ITEM(argv, idx[i]);
        Py_ssize_t len = PyBytes_GET_SIZE(a);
        o += put_line(o, '$', len, digits(len));
        memcpy(o, PyBytes_AS_STRING(a), (size_t)len);
        o[len] = '\r';
        o[len + 1] = '\n';
        o += len + 2;
    }
    return res;
}

static PyObject *key_slot(PyObject *self, PyObject *key) {
    if (!PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "key_slot(key: bytes)");
        return NULL;
    }
    return PyLong_FromLong(
        (long)hash_slot((const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)));
}

/* group_keys(args, step, owner): the keys at args[1::step] (each followed by
 * step-1 values) split by owning shard. One shard: that shard's index (int).
 * Several: [(shard, piece, key_indexes)] in order of each shard's first key,
 * piece = the command re-encoded with that shard's keys (and values),
 * key_indexes = argument position - 1 of each of those keys (for MGET, where
 * its value goes in the merged reply), as slotwarden.resp.keys.group_keys_py. */
static PyObject *group_keys(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0]) || !PyBytes_Check(args[2]) ||
        PyBytes_GET_SIZE(args[2]) != SLOTS) {
        PyErr_SetString(PyExc_TypeError, "group_keys(args: list[bytes], step: int, owner: bytes)");
        return NULL;
    }
    PyObject *argv = args[0];
    long step = PyLong_AsLong(args[1]);
    if (step == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (step < 1 || argc < 2 || (argc - 1) % step) {
        PyErr_SetString(PyExc_ValueError, "group_keys: bad step or argument count");
        return NULL;
    }
    const unsigned char *owner = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    for (Py_ssize_t i = 0; i < argc; i++) {
        if (!PyBytes_Check(PyList_GET_ITEM(argv, i))) {
            PyErr_SetString(PyExc_TypeError, "group_keys: arguments must be bytes");
            return NULL;
        }
    }
    Py_ssize_t nkeys = (argc - 1) / step;
    unsigned char *shard_of = PyMem_Malloc((size_t)nkeys);
    Py_ssize_t *idx = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)argc);
    PyObject *result = NULL;
    if (shard_of == NULL || idx == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int first = -1, single = 1;
    unsigned char seen[256] = {0};
    unsigned char order[256];
    int norder = 0;
    for (Py_ssize_t k = 0; k < nkeys; k++) {
        PyObject *key = PyList_GET_ITEM(argv, 1 + k * step);
        unsigned int slot = hash_slot((const unsigned char *)PyBytes_AS_STRING(key),
                                      PyBytes_GET_SIZE(key));
        unsigned char sh = owner[slot];
        shard_of[k] = sh;
        if (first < 0)
            first = sh;
        else if (sh != first)
            single = 0;
        if (!seen[sh]) {
            seen[sh] = 1;
            order[norder++] = sh;
        }
    }
    if (single) {
        result = PyLong_FromLong(first);
        goto done;
    }
    result = PyList_New(norder);
    if (result == NULL)
        goto done;
    for (int g = 0; g < norder; g++) {
        unsigned char sh = order[g];
        Py_ssize_t n = 0, count = 0;
        idx[n++] = 0;
        for (Py_ssize_t k = 0; k < nkeys; k++) {
            if (shard_of[k] != sh)
                continue;
            Py_ssize_t at = 1 + k * step;
            for (long j = 0; j < step; j++)
                idx[n++] = at + j;
            count++;
        }
        PyObject *where = PyList_New(count);
        if (where == NULL)
            goto fail;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *index = PyLong_FromSsize_t(idx[1 + i * step] - 1);
            if (index == NULL) {
                Py_DECREF(where);
                goto fail;
            }
            PyList_SET_ITEM(where, i, index);
        }
        PyObject *piece = encode_indexed(argv, idx, n);
        if (piece == NULL) {
            Py_DECREF(where);
            goto fail;
        }
        PyObject *shard = PyLong_FromLong(sh);
        PyObject *entry = shard == NULL ? NULL : PyTuple_Pack(3, shard, piece, where);
        Py_XDECREF(shard);
        Py_DECREF(piece);
        Py_DECREF(where);
        if (entry == NULL)
            goto fail;
        PyList_SET_ITEM(result, g, entry);
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(shard_of);
    PyMem_Free(idx);
    return result;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"parse_requests", (PyCFunction)(void (*)(void))parse_requests, METH_FASTCALL,
     "parse_requests(buf, pos, limit, max_args, max_bulk, max_inline) -> (requests, pos, need, "
     "partial)"},
    {"parse_bulks", (PyCFunction)(void (*)(void))parse_bulks, METH_FASTCALL,
     "parse_bulks(buf, pos, n, max_bulk, max_inline, args) -> (pos, need): resume a request"},
    {"scan_replies", (PyCFunction)(void (*)(void))scan_replies, METH_FASTCALL,
     "scan_replies(buf, pos, out) -> (pos, need): append complete replies to out"},
    {"split_array", (PyCFunction)split_array, METH_O,
     "split_array(raw) -> list of raw elements | None (not a complete array) | UNSURE"},
    {"merge_ordered", (PyCFunction)(void (*)(void))merge_ordered, METH_FASTCALL,
     "merge_ordered(parts, positions, total, nil) -> merged array | UNSURE (a part is odd)"},
    {"group_keys", (PyCFunction)(void (*)(void))group_keys, METH_FASTCALL,
     "group_keys(args, step, owner) -> shard | [(shard, piece, key_indexes)]"},
    {"key_slot", (PyCFunction)key_slot, METH_O, "key_slot(key) -> hash slot, honouring {tags}"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "slotwarden.resp._speedups",
    "C versions of the router's per-request byte work (see slotwarden/resp/_speedups.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    crc16_init();
    OK_REPLY = PyBytes_FromStringAndSize("+OK\r\n", 5);
    NIL_REPLY = PyBytes_FromStringAndSize("$-1\r\n", 5);
    UNSURE = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (OK_REPLY == NULL || NIL_REPLY == NULL || UNSURE == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "UNSURE", UNSURE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
