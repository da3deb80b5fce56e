/*
 * _frame.h — the RESP framing and key hashing shared by the C speedups
 * (slotwarden/resp/_speedups.c) and the router's C hot path (router/wire/_hot.c).
 *
 * Static inline helpers only, no Python state: CRC16 and Redis's keyHashSlot,
 * CRLF search, strict decimal lengths, and `frame_reply` (where one complete
 * RESP2/RESP3 reply ends). Each extension calls crc16_init() once at import.
 * Nothing reads outside [0, end); numbers longer than 18 digits are "unsure".
 */
#ifndef SLOTWARDEN_FRAME_H
#define SLOTWARDEN_FRAME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#define SLOTS 16384
#define MAX_DIGITS 18

/* ------------------------------------------------------------------ CRC16 */

static uint16_t crc16_table[256];

static void crc16_init(void) {
    for (int i = 0; i < 256; i++) {
        uint16_t crc = (uint16_t)(i << 8);
        for (int j = 0; j < 8; j++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        crc16_table[i] = crc;
    }
}

static inline unsigned int crc16(const unsigned char *s, Py_ssize_t n) {
    uint16_t crc = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ s[i]) & 0xff]);
    return crc;
}

/* Redis keyHashSlot: the first '{', the first '}' after it, non-empty between. */
static inline unsigned int hash_slot(const unsigned char *s, Py_ssize_t n) {
    const unsigned char *open = memchr(s, '{', (size_t)n);
    if (open != NULL) {
        Py_ssize_t start = open - s;
        const unsigned char *close = memchr(open + 1, '}', (size_t)(n - start - 1));
        if (close != NULL && close - open > 1)
            return crc16(open + 1, close - open - 1) & (SLOTS - 1);
    }
    return crc16(s, n) & (SLOTS - 1);
}

/* ------------------------------------------------------------------ lines */

/* Index of the first "\r\n" at or after p, or -1 when there is none yet. */
static inline Py_ssize_t find_crlf(const char *s, Py_ssize_t p, Py_ssize_t end) {
    while (p < end) {
        const char *r = memchr(s + p, '\r', (size_t)(end - p));
        if (r == NULL)
            return -1;
        Py_ssize_t i = r - s;
        if (i + 1 >= end)
            return -1;
        if (s[i + 1] == '\n')
            return i;
        p = i + 1;
    }
    return -1;
}

/* Digits only (leading zeros allowed, as Python's int() takes them), at most
 * 18 of them; -1 otherwise. For backend replies, framed like int() would. */
static inline long long plain_digits(const char *s, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = b - a;
    if (n < 1 || n > MAX_DIGITS)
        return -1;
    long long v = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

/* A canonical non-negative decimal in s[a:b] (as Redis's string2ll: digits
 * only, no leading zero unless it is "0"), at most 18 digits; -1 otherwise. */
static inline long long canonical_len(const char *s, Py_ssize_t a, Py_ssize_t b) {
    if (b - a > 1 && s[a] == '0')
        return -1;
    return plain_digits(s, a, b);
}

/* ------------------------------------------------------------------ replies */

enum { FRAME_DONE = 1, FRAME_MORE = 0, FRAME_UNSURE = -1 };

/* Frame one reply at s[start:end]. FRAME_DONE: *out = its end. FRAME_MORE:
 * *out = bytes needed from start (as slotwarden.resp.replies.ReplyScanner.next_reply
 * sets ``need``). FRAME_UNSURE: let the reference look at it. */
static int frame_reply(const char *s, Py_ssize_t start, Py_ssize_t end, Py_ssize_t *out) {
    Py_ssize_t p = start;
    long long pending = 1;
    while (pending > 0) {
        if (p >= end) {
            *out = p - start + 1;
            return FRAME_MORE;
        }
        char t = s[p];
        Py_ssize_t nl = find_crlf(s, p, end);
        if (nl < 0) {
            *out = end - start + 1;
            return FRAME_MORE;
        }
        switch (t) {
        case '+': case '-': case ':': case ',': case '(': case '#': case '_':
            p = nl + 2;
            pending--;
            continue;
        default:
            break;
        }
        long long n;
        int nil = (nl - p == 3 && s[p + 1] == '-' && s[p + 2] == '1');
        if (nil) {
            n = -1;
        } else {
            n = plain_digits(s, p + 1, nl);
            if (n < 0 || n > (1LL << 40))
                return FRAME_UNSURE;
        }
        p = nl + 2;
        switch (t) {
        case '$': case '=': case '!':
            if (n >= 0) {
                p += (Py_ssize_t)n + 2;
                if (p > end) {
                    *out = p - start;
                    return FRAME_MORE;
                }
            }
            pending--;
            break;
        case '*': case '~': case '>':
            pending += n > 0 ? n - 1 : -1;
            break;
        case '%':
            pending += n > 0 ? 2 * n - 1 : -1;
            break;
        case '|':
            if (n < 0)
                return FRAME_UNSURE;
            pending += 2 * n;
            break;
        default:
            return FRAME_UNSURE;
        }
        if (pending > (1LL << 50))
            return FRAME_UNSURE;
    }
    *out = p;
    return FRAME_DONE;
}

#endif /* SLOTWARDEN_FRAME_H */
