/* The native fast path for OTLP logs: serialized ExportLogsServiceRequest -> Kafka records.
 *
 * What it does, for each log record of a request, in one pass over the protobuf bytes:
 * classify (feedback or not), map the attributes to the event's fields, check them against
 * the event model's types and limits, and write the Confluent-framed Avro value, the key and
 * the headers. It never decides anything the Python path would decide differently: a record
 * it cannot prove valid, unchanged by sanitising and redaction, and canonically encoded is
 * handed back ("deferred") to the Python path, which maps, validates (and rejects or
 * redacts) it exactly as before. A request it cannot parse exactly as protobuf would (unknown
 * or repeated singular fields, wire-type mismatches, bad UTF-8, deep nesting) is handed back
 * whole. The tables that drive it (fields in Avro order, attribute keys, constraints) are
 * built in Python by ``otlp_feedback.native`` from the models, the convention and the
 * schemas, so this file holds no convention of its own.
 *
 * Called by ``otlp_feedback.native.NativeLogs`` with the GIL held. A call runs in two phases:
 * ``walk`` parses and encodes every record into C memory, touching no Python object, so for
 * large requests it runs with the GIL released (other request threads run Python meanwhile);
 * a record that needs a Python call on the way (a float's repr, the redactor's verdict on an
 * attribute key) is marked and finished by ``build``, which holds the GIL and makes the
 * Python objects. Thread-safe: a Plan is immutable and every call has its own scratch memory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* SHA-1, for the deterministic event id (a UUIDv5 of the record's content). OpenSSL's when the
 * build finds it (setup.py defines OFB_HAVE_OPENSSL), else the portable one below, which took
 * 28k of the 62k instructions per record (benchmarks/RESULTS.md, session 3).                */

#ifdef OFB_HAVE_OPENSSL
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA1_*: the low-level API is all a 700-byte hash needs */
#include <openssl/sha.h>
typedef SHA_CTX Sha1;
static void sha1_init(Sha1 *s) { SHA1_Init(s); }
static void sha1_update(Sha1 *s, const uint8_t *p, size_t n) { SHA1_Update(s, p, n); }
static void sha1_final(Sha1 *s, uint8_t out[20]) { SHA1_Final(out, s); }
#else

typedef struct {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} Sha1;

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(Sha1 *s, const uint8_t *p) {
    uint32_t w[80], a, b, c, d, e, t;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3]; e = s->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
        else { f = b ^ c ^ d; k = 0xCA62C1D6; }
        t = ROL(a, 5) + f + e + k + w[i];
        e = d; d = c; c = ROL(b, 30); b = a; a = t;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}

static void sha1_init(Sha1 *s) {
    s->h[0] = 0x67452301; s->h[1] = 0xEFCDAB89; s->h[2] = 0x98BADCFE;
    s->h[3] = 0x10325476; s->h[4] = 0xC3D2E1F0;
    s->len = 0; s->used = 0;
}

static void sha1_update(Sha1 *s, const uint8_t *p, size_t n) {
    s->len += n;
    while (n > 0) {
        size_t take = 64 - s->used;
        if (take > n) take = n;
        memcpy(s->buf + s->used, p, take);
        s->used += take; p += take; n -= take;
        if (s->used == 64) { sha1_block(s, s->buf); s->used = 0; }
    }
}

static void sha1_final(Sha1 *s, uint8_t out[20]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, zero = 0, lenbuf[8];
    sha1_update(s, &pad, 1);
    while (s->used != 56) sha1_update(s, &zero, 1);
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(s, lenbuf, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24); out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8); out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

#endif

/* ---------------------------------------------------------------------------------------- */
/* Growable byte buffer.                                                                    */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + extra) cap *= 2;
    uint8_t *p = PyMem_RawRealloc(b->p, cap); /* Raw: callable without the GIL */
    if (p == NULL) return -1;
    b->p = p; b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int buf_byte(Buf *b, uint8_t c) { return buf_put(b, &c, 1); }

static int buf_long(Buf *b, int64_t v) { /* Avro long: zig-zag varint */
    uint64_t n = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t tmp[10];
    int i = 0;
    while (n > 0x7F) { tmp[i++] = (uint8_t)((n & 0x7F) | 0x80); n >>= 7; }
    tmp[i++] = (uint8_t)n;
    return buf_put(b, tmp, (size_t)i);
}

static int buf_str(Buf *b, const uint8_t *p, size_t n) {
    if (buf_long(b, (int64_t)n) < 0) return -1;
    return buf_put(b, p, n);
}

static int buf_double(Buf *b, double d) {
    uint8_t tmp[8];
    memcpy(tmp, &d, 8); /* x86-64 and aarch64 are little-endian, as Avro wants */
    return buf_put(b, tmp, 8);
}

/* ---------------------------------------------------------------------------------------- */
/* Protobuf reading.                                                                        */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
/* Results: OK, DEFER (this record goes to Python), WHOLE (the request goes to Python),
 * NEEDS_GIL (try this record again once the GIL is held: it needs a Python call), ERROR (a
 * Python exception is set), NOMEM (out of memory; the caller sets MemoryError with the GIL). */
enum { RC_OK = 0, RC_DEFER = 1, RC_WHOLE = 2, RC_NEEDS_GIL = 3, RC_ERROR = -1, RC_NOMEM = -2 };
#define MAX_DEPTH 32

typedef struct {
    const uint8_t *p;
    size_t n;
} Slice;

typedef struct {
    const uint8_t *p, *end;
} Rd;

/* Reads a varint; *minimal is cleared when it used more bytes than needed. */
static int rd_varint(Rd *r, uint64_t *out, int *canon) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t c = *r->p++;
        if (shift == 63 && c > 1) return -1;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            if (c == 0 && shift > 0) *canon = 0;
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The next field: its number, wire type, and for LEN its contents, for others the value. */
typedef struct {
    uint32_t num;
    int wt;
    uint64_t v;
    Slice s;
} Field;

/* A tag or a length: protobuf reads these as 32-bit varints of at most 5 bytes. */
static int rd_varint32(Rd *r, uint64_t *out, int *canon) {
    const uint8_t *start = r->p;
    if (rd_varint(r, out, canon) < 0) return -1;
    return (r->p - start > 5 || *out > 0xFFFFFFFFull) ? -1 : 0;
}

static int rd_field(Rd *r, Field *f, int *canon) {
    uint64_t tag;
    if (rd_varint32(r, &tag, canon) < 0) return -1;
    if (tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF) return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    switch (f->wt) {
    case WT_VARINT:
        return rd_varint(r, &f->v, canon);
    case WT_I64:
        if (r->end - r->p < 8) return -1;
        memcpy(&f->v, r->p, 8);
        r->p += 8;
        return 0;
    case WT_I32: {
        uint32_t v32;
        if (r->end - r->p < 4) return -1;
        memcpy(&v32, r->p, 4);
        f->v = v32;
        r->p += 4;
        return 0;
    }
    case WT_LEN: {
        uint64_t n;
        if (rd_varint32(r, &n, canon) < 0 || n > 0x7FFFFFFFull) return -1;
        if (n > (uint64_t)(r->end - r->p)) return -1;
        f->s.p = r->p;
        f->s.n = (size_t)n;
        r->p += n;
        return 0;
    }
    default:
        return -1; /* groups and invalid wire types: protobuf decides */
    }
}

static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (n - i < k + 1) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += k + 1;
    }
    return 1;
}

static size_t utf8_len(const uint8_t *s, size_t n) { /* code points of valid UTF-8 */
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += (s[i] & 0xC0) != 0x80;
    return count;
}

/* Byte length of the first ``limit`` code points. */
static size_t utf8_prefix(const uint8_t *s, size_t n, size_t limit) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            if (count == limit) return i;
            count++;
        }
    }
    return n;
}

/* Whether the text holds a character validation.CONTROL_CHARACTERS matches. */
static int has_control(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != 0x09 && c != 0x0A) || c == 0x7F) return 1;
        } else if (c == 0xC2) {
            if (i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F) return 1;
        } else if (c == 0xD8) {
            if (i + 1 < n && s[i + 1] == 0x9C) return 1;
        } else if (c == 0xE2 && i + 2 < n) {
            uint8_t c1 = s[i + 1], c2 = s[i + 2];
            if (c1 == 0x80 && (c2 == 0x8E || c2 == 0x8F || (c2 >= 0xA8 && c2 <= 0xAE))) return 1;
            if (c1 == 0x81 && c2 >= 0xA6 && c2 <= 0xA9) return 1;
        } else if (c == 0xEF && i + 2 < n) {
            if (s[i + 1] == 0xBB && s[i + 2] == 0xBF) return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* OTLP values.                                                                             */

enum { V_ABSENT = 0, V_NONE, V_STR, V_BOOL, V_INT, V_DOUBLE, V_BYTES, V_ARRAY, V_KVLIST,
       V_OTHER };

typedef struct {
    int kind;
    Slice s; /* string, bytes, or the raw ArrayValue / KeyValueList contents */
    int64_t i;
    double d;
} Val;

typedef struct {
    Slice key;
    Val val;
} Attr;

static int parse_kvlist(Slice s, int depth, int *canon);

/* AnyValue. Returns RC_OK or RC_WHOLE. */
static int parse_any(Slice s, Val *out, int depth, int *canon) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    int seen = 0;
    out->kind = V_NONE;
    if (depth > MAX_DEPTH) return RC_WHOLE;
    while (r.p < r.end) {
        if (rd_field(&r, &f, canon) < 0) return RC_WHOLE;
        seen++;
        switch (f.num) {
        case 1:
            if (f.wt != WT_LEN || !utf8_valid(f.s.p, f.s.n)) return RC_WHOLE;
            out->kind = V_STR; out->s = f.s;
            break;
        case 2:
            if (f.wt != WT_VARINT) return RC_WHOLE;
            if (f.v > 1) *canon = 0;
            out->kind = V_BOOL; out->i = f.v != 0;
            break;
        case 3:
            if (f.wt != WT_VARINT) return RC_WHOLE;
            out->kind = V_INT; out->i = (int64_t)f.v;
            break;
        case 4:
            if (f.wt != WT_I64) return RC_WHOLE;
            out->kind = V_DOUBLE; memcpy(&out->d, &f.v, 8);
            break;
        case 5: {
            /* ArrayValue: a second occurrence would be merged by protobuf. */
            if (f.wt != WT_LEN || out->kind == V_ARRAY) return RC_WHOLE;
            Rd a = {f.s.p, f.s.p + f.s.n};
            Field g;
            while (a.p < a.end) {
                Val item;
                if (rd_field(&a, &g, canon) < 0 || g.num != 1 || g.wt != WT_LEN) return RC_WHOLE;
                if (parse_any(g.s, &item, depth + 1, canon) != RC_OK) return RC_WHOLE;
            }
            out->kind = V_ARRAY; out->s = f.s;
            break;
        }
        case 6:
            if (f.wt != WT_LEN || out->kind == V_KVLIST) return RC_WHOLE;
            if (parse_kvlist(f.s, depth + 1, canon) != RC_OK) return RC_WHOLE;
            out->kind = V_KVLIST; out->s = f.s;
            break;
        case 7:
            if (f.wt != WT_LEN) return RC_WHOLE;
            out->kind = V_BYTES; out->s = f.s;
            break;
        default:
            return RC_WHOLE; /* string_value_strindex and unknown fields */
        }
    }
    if (seen > 1) *canon = 0; /* protobuf keeps only the last member of the oneof */
    return RC_OK;
}

/* KeyValue. Returns RC_OK or RC_WHOLE. */
static int parse_kv(Slice s, Attr *out, int depth, int *canon) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    uint32_t last = 0;
    int has_value = 0;
    out->key.p = (const uint8_t *)""; out->key.n = 0;
    out->val.kind = V_NONE;
    while (r.p < r.end) {
        if (rd_field(&r, &f, canon) < 0) return RC_WHOLE;
        if (f.num <= last) *canon = 0;
        last = f.num;
        if (f.num == 1) {
            if (f.wt != WT_LEN || !utf8_valid(f.s.p, f.s.n)) return RC_WHOLE;
            if (f.s.n == 0) *canon = 0;
            out->key = f.s;
        } else if (f.num == 2) {
            if (f.wt != WT_LEN || has_value) return RC_WHOLE;
            has_value = 1;
            if (parse_any(f.s, &out->val, depth, canon) != RC_OK) return RC_WHOLE;
        } else {
            return RC_WHOLE;
        }
    }
    return RC_OK;
}

static int parse_kvlist(Slice s, int depth, int *canon) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    if (depth > MAX_DEPTH) return RC_WHOLE;
    while (r.p < r.end) {
        Attr kv;
        if (rd_field(&r, &f, canon) < 0 || f.num != 1 || f.wt != WT_LEN) return RC_WHOLE;
        if (parse_kv(f.s, &kv, depth + 1, canon) != RC_OK) return RC_WHOLE;
    }
    return RC_OK;
}

/* Keys of one length mostly differ in their first byte ("session.id" vs "event.name"): checking
 * it inline saves a memcmp call per plan key compared (the key table, the service key). */
static inline int slice_eq(Slice a, Slice b) {
    return a.n == b.n && (a.n == 0 || (a.p[0] == b.p[0] && memcmp(a.p, b.p, a.n) == 0));
}


/* An attribute list with dict semantics: a repeated key keeps its first position and takes
 * the last value (as ``attributes_dict`` builds it). */
typedef struct {
    Attr *a;
    size_t n, cap;
} Attrs;

#define MAX_ATTRS 512 /* more on one record: Python handles it (bounds the quadratic dedup) */

static int attrs_find(const Attrs *l, Slice key) {
    for (size_t i = 0; i < l->n; i++)
        if (slice_eq(l->a[i].key, key)) return (int)i;
    return -1;
}

/* Returns RC_OK, RC_DEFER (too many), RC_NOMEM. */
static int attrs_add(Attrs *l, const Attr *kv) {
    int at = attrs_find(l, kv->key);
    if (at >= 0) { l->a[at].val = kv->val; return RC_OK; }
    if (l->n >= MAX_ATTRS) return RC_DEFER;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        Attr *a = PyMem_RawRealloc(l->a, cap * sizeof(Attr));
        if (a == NULL) return RC_NOMEM;
        l->a = a; l->cap = cap;
    }
    l->a[l->n++] = *kv;
    return RC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The plan: per event type, the fields in Avro order and where each comes from.            */

enum { SRC_ATTR = 0, SRC_EVENT_ID, SRC_TIMESTAMP, SRC_RECEIVED, SRC_CARRIER, SRC_TRACE,
       SRC_SPAN, SRC_ATTRIBUTES, SRC_CLIENT, SRC_EMPTY, SRC_PREFIX };
enum { K_STRING = 0, K_LONG, K_DOUBLE, K_BOOL, K_TIMESTAMP, K_STR_LIST, K_STR_MAP, K_DBL_MAP };
enum { D_NONE = 0, D_TRUE, D_FALSE, D_EMPTY };

#define MAX_FIELDS 64
#define MAX_LITERALS 8

typedef struct {
    int source, kind, nullable, required, dflt, finite, redact;
    int has_lo, has_hi;
    double lo_d, hi_d;
    int64_t lo_i, hi_i;
    Py_ssize_t max_len;
    int n_literals;
    Slice literals[MAX_LITERALS];
} FieldSpec;

typedef struct {
    Slice key;
    int field[2], first[2], n; /* one key may feed two fields */
} KeyEntry;

/* ``sum_fields``: ``total`` is the sum of ``parts`` (field indices). */
#define MAX_SUMS 4
#define MAX_SUM_PARTS 8
typedef struct {
    int total, n_parts;
    int parts[MAX_SUM_PARTS];
} SumSpec;

typedef struct {
    int native;
    Slice event_name;
    PyObject *event_type;   /* str */
    Slice event_type_utf8;  /* the same, for hashing without the GIL */
    PyObject *topic;        /* str */
    PyObject *type_header;  /* ("event_type", b"...") */
    PyObject *version_header;
    uint8_t header[5];
    int n_fields;
    FieldSpec fields[MAX_FIELDS];
    int n_keys;
    KeyEntry *keys;
    Slice prefix;
    int prefix_field;
    int n_known;
    Slice *known;
    int body_field;
    int n_kafka_key;
    int kafka_key[4];
    int n_one_of;   /* the event needs at least one of these fields (0: no such rule) */
    int one_of[MAX_FIELDS];
    int n_sums;
    SumSpec sums[MAX_SUMS];
} TypeSpec;

#define MAX_TYPES 8

/* The redaction gate: whether any enabled detector's declared trigger fires on a text
 * (``native.RedactionGate``, compiled from ``Redactor.detectors``). Per byte, ``cls`` says
 * what the byte is to the triggers; ``sep`` bit k says it continues digit run k. */
#define MAX_DIGIT_RUNS 32
enum { G_ANY = 1, G_DIGIT = 2, G_SEP = 4 };

typedef struct {
    int enabled, every_text;
    int n_runs;
    Py_ssize_t min_digits[MAX_DIGIT_RUNS], min_seps[MAX_DIGIT_RUNS];
    uint8_t cls[256];
    uint32_t sep[256];
} Gate;

typedef struct {
    PyObject_HEAD
    PyObject *record_class;
    PyObject *scrubs_attribute; /* callable(key) -> bool, or None */
    PyObject *strings;          /* keeps the spec's str/bytes objects (slices point in them) */
    uint8_t ns[16];
    Py_ssize_t max_string_length, max_attributes, max_attribute_value_len, max_value_bytes;
    Py_ssize_t max_text_length; /* the models' str_max_length */
    int control;
    int64_t max_future_ns, max_age_ns;
    Gate gate;
    int n_set_aside;
    Slice set_aside[8];
    Slice evaluation_event;
    Slice feedback_prefix; /* "feedback.": a name under it that matches no type is counted */
    Slice event_name_key; /* the legacy event.name attribute */
    Slice service_key;    /* service.name: hashed into a content id */
    Slice carrier;        /* "log_record" */
    /* Header names, from ``outbound.HEADERS`` (interned, owned). */
    PyObject *event_id_header, *trace_id_header, *client_id_header;
    /* The lineage pairs every record ends with (``outbound.RECEIVER_HEADERS``): a tuple of
     * (str, bytes) tuples, owned; appended as they are, so both paths share the objects. */
    PyObject *receiver_headers;
    int n_types;
    TypeSpec types[MAX_TYPES];
} Plan;

/* A str from the spec as a UTF-8 slice; the object is kept alive by plan->strings. */
static int spec_slice(Plan *plan, PyObject *obj, Slice *out) {
    Py_ssize_t n;
    const char *p;
    if (PyUnicode_Check(obj)) {
        p = PyUnicode_AsUTF8AndSize(obj, &n);
        if (p == NULL) return -1;
    } else if (PyBytes_Check(obj)) {
        p = PyBytes_AS_STRING(obj);
        n = PyBytes_GET_SIZE(obj);
    } else {
        PyErr_SetString(PyExc_TypeError, "plan: expected str or bytes");
        return -1;
    }
    if (PyList_Append(plan->strings, obj) < 0) return -1;
    out->p = (const uint8_t *)p;
    out->n = (size_t)n;
    return 0;
}

static int spec_long(PyObject *obj, long long *out) {
    *out = PyLong_AsLongLong(obj);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Reading the plan: ``native.PlanSpec`` and the frozen dataclasses it holds, by attribute name
 * (the names are the contract, not positions), once per plan build. */

static int attr_long(PyObject *obj, const char *name, long long lo, long long hi, long long *out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    if (!PyLong_Check(v)) {
        Py_DECREF(v);
        PyErr_Format(PyExc_TypeError, "plan: %s must be an int", name);
        return -1;
    }
    int err = spec_long(v, out);
    Py_DECREF(v);
    if (err < 0) return -1;
    if (*out < lo || *out > hi) {
        PyErr_Format(PyExc_ValueError, "plan: %s out of range", name);
        return -1;
    }
    return 0;
}

static int attr_int(PyObject *obj, const char *name, int lo, int hi, int *out) {
    long long v;
    if (attr_long(obj, name, lo, hi, &v) < 0) return -1;
    *out = (int)v;
    return 0;
}

static int attr_ssize(PyObject *obj, const char *name, Py_ssize_t *out) {
    long long v;
    if (attr_long(obj, name, PY_SSIZE_T_MIN, PY_SSIZE_T_MAX, &v) < 0) return -1;
    *out = (Py_ssize_t)v;
    return 0;
}

static int attr_flag(PyObject *obj, const char *name, int *out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    *out = PyObject_IsTrue(v);
    Py_DECREF(v);
    return *out < 0 ? -1 : 0;
}

/* A str (or bytes) attribute as a slice; plan->strings keeps the object alive. */
static int attr_slice(Plan *plan, PyObject *obj, const char *name, Slice *out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    int err = spec_slice(plan, v, out);
    Py_DECREF(v);
    return err;
}

/* A str attribute, kept by plan->strings; *out is borrowed from there. */
static int attr_str(Plan *plan, PyObject *obj, const char *name, PyObject **out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    if (!PyUnicode_Check(v)) {
        Py_DECREF(v);
        PyErr_Format(PyExc_TypeError, "plan: %s must be a str", name);
        return -1;
    }
    int err = PyList_Append(plan->strings, v);
    Py_DECREF(v);
    *out = v;
    return err;
}

/* A tuple attribute of at most ``max`` items: a new reference. */
static PyObject *attr_tuple(PyObject *obj, const char *name, Py_ssize_t max) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return NULL;
    if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) > max) {
        Py_DECREF(v);
        PyErr_Format(PyExc_ValueError, "plan: %s must be a tuple of at most %zd", name, max);
        return NULL;
    }
    return v;
}

/* A tuple of field indices (kafka_key, one_of, parts). */
static int attr_indices(PyObject *obj, const char *name, int n_fields, int max, int *out, int *n) {
    PyObject *t = attr_tuple(obj, name, max);
    if (t == NULL) return -1;
    *n = (int)PyTuple_GET_SIZE(t);
    for (int i = 0; i < *n; i++) {
        long long v;
        if (spec_long(PyTuple_GET_ITEM(t, i), &v) < 0) { Py_DECREF(t); return -1; }
        if (v < 0 || v >= n_fields) {
            Py_DECREF(t);
            PyErr_Format(PyExc_ValueError, "plan: %s names an unknown field", name);
            return -1;
        }
        out[i] = (int)v;
    }
    Py_DECREF(t);
    return 0;
}

/* native.FieldPlan -> FieldSpec. */
static int parse_field_spec(Plan *plan, PyObject *obj, FieldSpec *f) {
    if (attr_int(obj, "source", 0, SRC_PREFIX, &f->source) < 0 ||
        attr_int(obj, "kind", 0, K_DBL_MAP, &f->kind) < 0 ||
        attr_flag(obj, "nullable", &f->nullable) < 0 ||
        attr_flag(obj, "required", &f->required) < 0 ||
        attr_int(obj, "default", 0, D_EMPTY, &f->dflt) < 0 ||
        attr_flag(obj, "finite", &f->finite) < 0 ||
        attr_ssize(obj, "max_len", &f->max_len) < 0 ||
        attr_flag(obj, "redact", &f->redact) < 0)
        return -1;
    PyObject *lo = PyObject_GetAttrString(obj, "lo"), *hi = NULL, *literals = NULL;
    int err = -1;
    if (lo == NULL || (hi = PyObject_GetAttrString(obj, "hi")) == NULL) goto done;
    f->has_lo = lo != Py_None;
    f->has_hi = hi != Py_None;
    if (f->kind == K_LONG) {
        long long v;
        if (f->has_lo) { if (spec_long(lo, &v) < 0) goto done; f->lo_i = v; }
        if (f->has_hi) { if (spec_long(hi, &v) < 0) goto done; f->hi_i = v; }
    } else {
        if (f->has_lo && (f->lo_d = PyFloat_AsDouble(lo)) == -1.0 && PyErr_Occurred()) goto done;
        if (f->has_hi && (f->hi_d = PyFloat_AsDouble(hi)) == -1.0 && PyErr_Occurred()) goto done;
    }
    if ((literals = attr_tuple(obj, "literals", MAX_LITERALS)) == NULL) goto done;
    f->n_literals = (int)PyTuple_GET_SIZE(literals);
    for (int i = 0; i < f->n_literals; i++)
        if (spec_slice(plan, PyTuple_GET_ITEM(literals, i), &f->literals[i]) < 0) goto done;
    err = 0;
done:
    Py_XDECREF(lo);
    Py_XDECREF(hi);
    Py_XDECREF(literals);
    return err;
}

/* A (name, value) header pair, kept by plan->strings; *out is borrowed from there. */
static int attr_header(Plan *plan, PyObject *obj, const char *name, PyObject **out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 2) {
        Py_DECREF(v);
        PyErr_Format(PyExc_TypeError, "plan: %s must be a (name, value) pair", name);
        return -1;
    }
    int err = PyList_Append(plan->strings, v);
    Py_DECREF(v);
    *out = v;
    return err;
}

/* native.KeyPlan entries -> the type's key table (one key may feed two fields). */
static int parse_keys(Plan *plan, PyObject *obj, TypeSpec *ts) {
    PyObject *keys = attr_tuple(obj, "keys", PY_SSIZE_T_MAX);
    if (keys == NULL) return -1;
    Py_ssize_t nk = PyTuple_GET_SIZE(keys);
    int err = -1;
    ts->keys = PyMem_Calloc((size_t)(nk ? nk : 1), sizeof(KeyEntry));
    if (ts->keys == NULL) { PyErr_NoMemory(); goto done; }
    ts->n_keys = 0;
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *entry = PyTuple_GET_ITEM(keys, i);
        int field, first;
        Slice ks;
        if (attr_int(entry, "field", 0, ts->n_fields - 1, &field) < 0 ||
            attr_flag(entry, "first", &first) < 0 || attr_slice(plan, entry, "key", &ks) < 0)
            goto done;
        KeyEntry *e = NULL;
        for (int j = 0; j < ts->n_keys; j++)
            if (slice_eq(ts->keys[j].key, ks)) e = &ts->keys[j];
        if (e == NULL) { e = &ts->keys[ts->n_keys++]; e->key = ks; e->n = 0; }
        if (e->n == 2) {
            PyErr_SetString(PyExc_ValueError, "plan: a key feeds at most two fields");
            goto done;
        }
        e->field[e->n] = field;
        e->first[e->n] = first;
        e->n++;
    }
    err = 0;
done:
    Py_DECREF(keys);
    return err;
}

/* native.SumPlan entries. */
static int parse_sums(PyObject *obj, TypeSpec *ts) {
    PyObject *sums = attr_tuple(obj, "sums", MAX_SUMS);
    if (sums == NULL) return -1;
    ts->n_sums = (int)PyTuple_GET_SIZE(sums);
    for (int i = 0; i < ts->n_sums; i++) {
        PyObject *rule = PyTuple_GET_ITEM(sums, i);
        SumSpec *sp = &ts->sums[i];
        if (attr_int(rule, "total", 0, ts->n_fields - 1, &sp->total) < 0 ||
            attr_indices(rule, "parts", ts->n_fields, MAX_SUM_PARTS, sp->parts, &sp->n_parts) < 0) {
            Py_DECREF(sums);
            return -1;
        }
    }
    Py_DECREF(sums);
    return 0;
}

/* native.TypePlan -> TypeSpec. */
static int parse_type_spec(Plan *plan, PyObject *obj, TypeSpec *ts) {
    PyObject *header = NULL, *fields = NULL, *known = NULL;
    int err = -1;
    if (attr_flag(obj, "native", &ts->native) < 0 ||
        attr_slice(plan, obj, "event_name", &ts->event_name) < 0 ||
        attr_str(plan, obj, "event_type", &ts->event_type) < 0 ||
        spec_slice(plan, ts->event_type, &ts->event_type_utf8) < 0 ||
        attr_str(plan, obj, "topic", &ts->topic) < 0 ||
        attr_header(plan, obj, "type_header", &ts->type_header) < 0 ||
        attr_header(plan, obj, "version_header", &ts->version_header) < 0)
        goto done;
    if ((header = PyObject_GetAttrString(obj, "wire_header")) == NULL) goto done;
    if (!PyBytes_Check(header) || PyBytes_GET_SIZE(header) != 5) {
        PyErr_SetString(PyExc_ValueError, "plan: the wire-format header is 5 bytes");
        goto done;
    }
    memcpy(ts->header, PyBytes_AS_STRING(header), 5);
    if ((fields = attr_tuple(obj, "fields", MAX_FIELDS)) == NULL) goto done;
    ts->n_fields = (int)PyTuple_GET_SIZE(fields);
    for (int i = 0; i < ts->n_fields; i++)
        if (parse_field_spec(plan, PyTuple_GET_ITEM(fields, i), &ts->fields[i]) < 0) goto done;
    if (parse_keys(plan, obj, ts) < 0) goto done;
    if (attr_slice(plan, obj, "prefix", &ts->prefix) < 0 ||
        attr_int(obj, "prefix_field", -1, ts->n_fields - 1, &ts->prefix_field) < 0 ||
        attr_int(obj, "body_field", -1, ts->n_fields - 1, &ts->body_field) < 0)
        goto done;
    if ((known = attr_tuple(obj, "known", PY_SSIZE_T_MAX)) == NULL) goto done;
    ts->n_known = (int)PyTuple_GET_SIZE(known);
    ts->known = PyMem_Calloc((size_t)(ts->n_known ? ts->n_known : 1), sizeof(Slice));
    if (ts->known == NULL) { PyErr_NoMemory(); goto done; }
    for (int i = 0; i < ts->n_known; i++)
        if (spec_slice(plan, PyTuple_GET_ITEM(known, i), &ts->known[i]) < 0) goto done;
    if (attr_indices(obj, "kafka_key", ts->n_fields, 4, ts->kafka_key, &ts->n_kafka_key) < 0 ||
        attr_indices(obj, "one_of", ts->n_fields, MAX_FIELDS, ts->one_of, &ts->n_one_of) < 0 ||
        parse_sums(obj, ts) < 0)
        goto done;
    err = 0;
done:
    Py_XDECREF(header);
    Py_XDECREF(fields);
    Py_XDECREF(known);
    return err;
}

static void Plan_dealloc(Plan *self) {
    for (int i = 0; i < self->n_types; i++) {
        PyMem_Free(self->types[i].keys);
        PyMem_Free(self->types[i].known);
    }
    Py_XDECREF(self->record_class);
    Py_XDECREF(self->scrubs_attribute);
    Py_XDECREF(self->strings);
    Py_XDECREF(self->event_id_header);
    Py_XDECREF(self->trace_id_header);
    Py_XDECREF(self->client_id_header);
    Py_XDECREF(self->receiver_headers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A byte set from the plan: bytes of length 256, entry b nonzero when byte b is in the set. */
static int gate_byte_set(PyObject *owner, const char *name, const uint8_t **out) {
    PyObject *v = PyObject_GetAttrString(owner, name);
    if (v == NULL) return -1;
    if (!PyBytes_Check(v) || PyBytes_GET_SIZE(v) != 256) {
        PyErr_Format(PyExc_ValueError, "plan: gate %s must be 256 bytes", name);
        Py_DECREF(v);
        return -1;
    }
    *out = (const uint8_t *)PyBytes_AS_STRING(v);
    Py_DECREF(v); /* the owner (kept alive by the caller) holds the bytes */
    return 0;
}

/* native.RedactionGate -> Gate, read by attribute. ``scrubs`` (may be NULL) receives a new
 * reference to ``scrubs_attribute``. */
static int parse_gate(PyObject *obj, Gate *g, PyObject **scrubs) {
    const uint8_t *any;
    memset(g, 0, sizeof *g);
    if (attr_flag(obj, "enabled", &g->enabled) < 0) return -1;
    if (attr_flag(obj, "every_text", &g->every_text) < 0) return -1;
    if (gate_byte_set(obj, "any_char", &any) < 0) return -1;
    for (int b = 0; b < 256; b++)
        if (any[b]) g->cls[b] |= G_ANY;
    PyObject *runs = PyObject_GetAttrString(obj, "digit_runs");
    if (runs == NULL) return -1;
    if (!PyTuple_Check(runs) || PyTuple_GET_SIZE(runs) > MAX_DIGIT_RUNS) {
        PyErr_SetString(PyExc_ValueError, "plan: gate digit_runs must be a short tuple");
        Py_DECREF(runs);
        return -1;
    }
    g->n_runs = (int)PyTuple_GET_SIZE(runs);
    for (int k = 0; k < g->n_runs; k++) {
        PyObject *run = PyTuple_GET_ITEM(runs, k), *min = PyObject_GetAttrString(run, "min_digits");
        const uint8_t *seps;
        if (min == NULL) { Py_DECREF(runs); return -1; }
        g->min_digits[k] = PyLong_AsSsize_t(min);
        Py_DECREF(min);
        if (g->min_digits[k] == -1 && PyErr_Occurred()) { Py_DECREF(runs); return -1; }
        if (g->min_digits[k] < 1) g->min_digits[k] = 1; /* one digit at least, as the regex */
        PyObject *min_seps = PyObject_GetAttrString(run, "min_separators");
        if (min_seps == NULL) { Py_DECREF(runs); return -1; }
        g->min_seps[k] = PyLong_AsSsize_t(min_seps);
        Py_DECREF(min_seps);
        if (g->min_seps[k] == -1 && PyErr_Occurred()) { Py_DECREF(runs); return -1; }
        if (g->min_seps[k] < 0) g->min_seps[k] = 0;
        if (gate_byte_set(run, "separators", &seps) < 0) { Py_DECREF(runs); return -1; }
        for (int b = 0; b < 256; b++)
            if (seps[b]) { g->cls[b] |= G_SEP; g->sep[b] |= (uint32_t)1 << k; }
    }
    Py_DECREF(runs);
    if (g->n_runs)
        for (int b = '0'; b <= '9'; b++) g->cls[b] |= G_DIGIT;
    if (scrubs != NULL) {
        *scrubs = PyObject_GetAttrString(obj, "scrubs_attribute");
        if (*scrubs == NULL) return -1;
    }
    return 0;
}

/* A header name from the plan's ``headers`` object (by attribute), interned. */
static int header_name(PyObject *headers, const char *attr, PyObject **out) {
    PyObject *name = PyObject_GetAttrString(headers, attr);
    if (name == NULL) return -1;
    if (!PyUnicode_CheckExact(name)) {
        Py_DECREF(name);
        PyErr_Format(PyExc_TypeError, "plan: header name %s must be a str", attr);
        return -1;
    }
    PyUnicode_InternInPlace(&name);
    Py_XSETREF(*out, name);
    return 0;
}

/* The plan's ``receiver_headers``: a tuple of (str, bytes) pairs, kept as given. */
static int parse_receiver_headers(Plan *self, PyObject *pairs) {
    if (!PyTuple_CheckExact(pairs)) {
        PyErr_SetString(PyExc_TypeError, "plan: receiver_headers must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pairs); i++) {
        PyObject *h = PyTuple_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(h) || PyTuple_GET_SIZE(h) != 2 ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(h, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(h, 1))) {
            PyErr_SetString(PyExc_TypeError, "plan: a receiver header is a (str, bytes) pair");
            return -1;
        }
    }
    Py_XSETREF(self->receiver_headers, Py_NewRef(pairs));
    return 0;
}

/* native.PlanLimits -> the plan's limits. */
static int parse_limits(Plan *self, PyObject *limits) {
    long long future, age;
    if (attr_ssize(limits, "max_string_length", &self->max_string_length) < 0 ||
        attr_ssize(limits, "max_attributes", &self->max_attributes) < 0 ||
        attr_ssize(limits, "max_attribute_value_len", &self->max_attribute_value_len) < 0 ||
        attr_flag(limits, "strip_control", &self->control) < 0 ||
        attr_long(limits, "max_future_ns", 0, (long long)1 << 62, &future) < 0 ||
        attr_long(limits, "max_age_ns", 0, (long long)1 << 62, &age) < 0 ||
        attr_ssize(limits, "max_value_bytes", &self->max_value_bytes) < 0 ||
        attr_ssize(limits, "max_text_length", &self->max_text_length) < 0)
        return -1;
    self->max_future_ns = future;
    self->max_age_ns = age;
    return 0;
}

static int Plan_init(Plan *self, PyObject *args, PyObject *kwds) {
    /* Plan(spec): a native.PlanSpec, read by attribute. */
    PyObject *spec, *attr = NULL;
    static char *kwlist[] = {"spec", NULL};
    int err = -1;
    if (self->strings != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Plan is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &spec)) return -1;
    self->strings = PyList_New(0);
    if (self->strings == NULL) return -1;
    if ((attr = PyObject_GetAttrString(spec, "headers")) == NULL) goto done;
    if (header_name(attr, "event_id", &self->event_id_header) < 0 ||
        header_name(attr, "trace_id", &self->trace_id_header) < 0 ||
        header_name(attr, "client_id", &self->client_id_header) < 0)
        goto done;
    Py_CLEAR(attr);
    if ((attr = PyObject_GetAttrString(spec, "receiver_headers")) == NULL ||
        parse_receiver_headers(self, attr) < 0)
        goto done;
    Py_CLEAR(attr);
    if ((self->record_class = PyObject_GetAttrString(spec, "record_class")) == NULL) goto done;
    if ((attr = PyObject_GetAttrString(spec, "namespace")) == NULL) goto done;
    if (!PyBytes_Check(attr) || PyBytes_GET_SIZE(attr) != 16) {
        PyErr_SetString(PyExc_ValueError, "plan: the id namespace is 16 bytes");
        goto done;
    }
    memcpy(self->ns, PyBytes_AS_STRING(attr), 16);
    Py_CLEAR(attr);
    if ((attr = PyObject_GetAttrString(spec, "limits")) == NULL || parse_limits(self, attr) < 0)
        goto done;
    Py_CLEAR(attr);
    if ((attr = PyObject_GetAttrString(spec, "redaction")) == NULL ||
        parse_gate(attr, &self->gate, &self->scrubs_attribute) < 0)
        goto done;
    Py_CLEAR(attr);
    if ((attr = attr_tuple(spec, "set_aside", 8)) == NULL) goto done;
    self->n_set_aside = (int)PyTuple_GET_SIZE(attr);
    for (int i = 0; i < self->n_set_aside; i++)
        if (spec_slice(self, PyTuple_GET_ITEM(attr, i), &self->set_aside[i]) < 0) goto done;
    Py_CLEAR(attr);
    if (attr_slice(self, spec, "evaluation_event", &self->evaluation_event) < 0 ||
        attr_slice(self, spec, "feedback_prefix", &self->feedback_prefix) < 0 ||
        attr_slice(self, spec, "event_name_key", &self->event_name_key) < 0 ||
        attr_slice(self, spec, "service_key", &self->service_key) < 0 ||
        attr_slice(self, spec, "carrier", &self->carrier) < 0)
        goto done;
    if ((attr = attr_tuple(spec, "types", MAX_TYPES)) == NULL) goto done;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(attr); i++) {
        self->n_types = (int)i + 1; /* so dealloc frees what was allocated */
        memset(&self->types[i], 0, sizeof(TypeSpec));
        if (parse_type_spec(self, PyTuple_GET_ITEM(attr, i), &self->types[i]) < 0) goto done;
    }
    err = 0;
done:
    Py_XDECREF(attr);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* One call's scratch state.                                                                */

typedef struct {
    int set; /* 0 unset, 1 from a second key, 2 from a first key */
    Val v;
} SlotVal;

typedef struct {
    Slice key;
    Val val;
    int local;
} Merged;

typedef struct {
    Plan *plan;
    int64_t received_ns, received_us;
    PyObject *client_id;     /* str or NULL */
    Slice client;
    PyObject *client_header; /* ("client_id", b"...") or NULL */
    Attrs resource, record;
    Merged *merged;
    size_t merged_cap;
    Buf out, text;
    int gil; /* whether this thread holds the GIL now (Python calls need it) */
    Slice resource_slice; /* the current ResourceLogs' resource, as sent */
    struct {
        struct Out_ *a;
        size_t n, cap;
        Py_ssize_t ignored;
        Py_ssize_t unknown; /* of those, feedback_prefix names matching no type */
        Buf arena; /* every encoded record's value, id, key and trace id */
    } outs;
    PyObject *event_id_name, *trace_id_name; /* header names, borrowed from the plan */
} Call;

/* datetime.fromtimestamp(ns / 1e9, UTC) in micros since the epoch, as CPython rounds it
 * (half to even on the float's fraction). Returns -1 when Python would not get a datetime. */
static int ns_to_micros(int64_t ns, int64_t *out) {
    double d = (double)ns / 1e9, intpart, frac;
    frac = modf(d, &intpart);
    frac *= 1e6;
    double rounded = round(frac);
    if (fabs(frac - rounded) == 0.5) rounded = 2.0 * round(frac / 2.0);
    frac = rounded;
    if (frac >= 1e6) { frac -= 1e6; intpart += 1.0; }
    else if (frac < 0) { frac += 1e6; intpart -= 1.0; }
    /* Years 1..9999 only (datetime's range), with margin. */
    if (intpart < -62135596800.0 + 86400.0 || intpart > 253402300799.0 - 86400.0) return -1;
    *out = (int64_t)intpart * 1000000 + (int64_t)frac;
    return 0;
}

/* Whether any enabled detector's trigger fires on ``text`` (UTF-8): when none does, the
 * redactor leaves the text as it is (``Redactor._pass`` runs a detector only when its trigger
 * fires). One pass: an AnyChar byte fires at once; a digit counts towards every digit run; a
 * separator of some runs counts towards those runs and ends the others; any other byte (a
 * letter, a byte of a non-ASCII character) ends them all. A run fires once it holds its
 * minimum of digits and of separators. */
static int gate_fires(const Gate *g, const uint8_t *s, size_t n) {
    if (!g->enabled) return 0;
    if (g->every_text) return 1; /* a configured regex may match anything, even "" */
    Py_ssize_t count[MAX_DIGIT_RUNS], seps[MAX_DIGIT_RUNS];
    int counting = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i], cls = g->cls[c];
        if (cls == 0) { counting = 0; continue; }
        if (cls & G_ANY) return 1;
        if (!counting) {
            memset(count, 0, sizeof(Py_ssize_t) * (size_t)g->n_runs);
            memset(seps, 0, sizeof(Py_ssize_t) * (size_t)g->n_runs);
            counting = 1;
        }
        if (cls & G_DIGIT) {
            for (int k = 0; k < g->n_runs; k++)
                if (++count[k] >= g->min_digits[k] && seps[k] >= g->min_seps[k]) return 1;
        } else {
            uint32_t keep = g->sep[c];
            for (int k = 0; k < g->n_runs; k++) {
                if (!(keep >> k & 1)) { count[k] = seps[k] = 0; continue; }
                if (++seps[k] >= g->min_seps[k] && count[k] >= g->min_digits[k]) return 1;
            }
        }
    }
    return 0;
}

static int may_redact(const Plan *plan, const uint8_t *s, size_t n) {
    return gate_fires(&plan->gate, s, n);
}

/* A string a field may take: length limits, control characters, redaction. */
static int check_text(const Call *c, const uint8_t *s, size_t n, Py_ssize_t max_len) {
    size_t len = utf8_len(s, n);
    if ((Py_ssize_t)len > c->plan->max_string_length || (Py_ssize_t)len > c->plan->max_text_length)
        return RC_DEFER;
    if (max_len >= 0 && (Py_ssize_t)len > max_len) return RC_DEFER;
    if (c->plan->control && has_control(s, n)) return RC_DEFER;
    return RC_OK;
}

static const char HEX[] = "0123456789abcdef";

static int all_zero(Slice s) {
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i]) return 0;
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* An attribute value as validation._to_text writes it, into c->text; RC_DEFER for arrays
 * and maps (JSON). Returns the text in *out. */
static int attr_text(Call *c, const Val *v, Slice *out) {
    char tmp[32];
    c->text.n = 0;
    switch (v->kind) {
    case V_STR:
        *out = v->s;
        return RC_OK;
    case V_NONE:
        out->p = (const uint8_t *)"null"; out->n = 4;
        return RC_OK;
    case V_BOOL:
        if (v->i) { out->p = (const uint8_t *)"true"; out->n = 4; }
        else { out->p = (const uint8_t *)"false"; out->n = 5; }
        return RC_OK;
    case V_INT: {
        int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
        if (buf_put(&c->text, tmp, (size_t)n) < 0) return RC_NOMEM;
        break;
    }
    case V_DOUBLE: {
        if (!c->gil) return RC_NEEDS_GIL; /* repr(float) is CPython's, and allocates */
        char *r = PyOS_double_to_string(v->d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (r == NULL) return RC_ERROR;
        int err = buf_put(&c->text, r, strlen(r));
        PyMem_Free(r);
        if (err < 0) return RC_NOMEM;
        break;
    }
    case V_BYTES: {
        const uint8_t *p = v->s.p;
        size_t n = v->s.n;
        if (buf_reserve(&c->text, (n + 2) / 3 * 4) < 0) return RC_NOMEM;
        uint8_t *o = c->text.p;
        size_t i = 0, k = 0;
        for (; i + 2 < n; i += 3) {
            uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
            o[k++] = B64[w >> 18]; o[k++] = B64[(w >> 12) & 63];
            o[k++] = B64[(w >> 6) & 63]; o[k++] = B64[w & 63];
        }
        if (i < n) {
            uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
            o[k++] = B64[w >> 18]; o[k++] = B64[(w >> 12) & 63];
            o[k++] = i + 1 < n ? B64[(w >> 6) & 63] : '=';
            o[k++] = '=';
        }
        c->text.n = k;
        break;
    }
    default:
        return RC_DEFER;
    }
    out->p = c->text.p;
    out->n = c->text.n;
    return RC_OK;
}

/* Asks the redactor whether an attribute key is scrubbed. */
static int scrubs(Call *c, Slice key) {
    PyObject *fn = c->plan->scrubs_attribute;
    if (fn == Py_None) return 0;
    if (!c->gil) return RC_NEEDS_GIL;
    PyObject *k = PyUnicode_DecodeUTF8((const char *)key.p, (Py_ssize_t)key.n, NULL);
    if (k == NULL) return -1;
    PyObject *r = PyObject_CallOneArg(fn, k);
    Py_DECREF(k);
    if (r == NULL) return -1;
    int yes = PyObject_IsTrue(r);
    Py_DECREF(r);
    return yes;
}

/* ---------------------------------------------------------------------------------------- */
/* One feedback record: map, check, encode.                                                 */

typedef struct {
    Slice trace, span, event_name, body_text, content;
    uint64_t time_ns, observed_ns;
    int canon, body_kvlist;
} Record;

static int starts_with(Slice s, Slice prefix) {
    return prefix.n > 0 && s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

/* The encoded record's parts, filled by encode(). */
typedef struct {
    Slice event_id;
    char idbuf[36];
    char trace_hex[2 * 64 + 1];
    char span_hex[2 * 64 + 1];
    Slice key;
    int has_key;
    int has_trace;
    Slice trace_text;
} Parts;

static int put_str_field(Call *c, const FieldSpec *f, Slice s) {
    if (f->nullable && buf_byte(&c->out, 2) < 0) return -1;
    return buf_str(&c->out, s.p, s.n);
}

static int encode_record(Call *c, const TypeSpec *ts, const Record *rec, Parts *parts) {
    const Plan *plan = c->plan;
    SlotVal slot[MAX_FIELDS];
    memset(slot, 0, sizeof(SlotVal) * (size_t)ts->n_fields);
    Attrs *local = &c->record, *res = &c->resource;

    /* merged = {**resource, **local}: resource keys first (a local value wins in place), then
     * keys only the record has. */
    size_t need = res->n + local->n;
    if (need > c->merged_cap) {
        Merged *m = PyMem_RawRealloc(c->merged, need * sizeof(Merged));
        if (m == NULL) return RC_NOMEM;
        c->merged = m; c->merged_cap = need;
    }
    size_t nm = 0;
    for (size_t i = 0; i < res->n; i++) {
        int at = attrs_find(local, res->a[i].key);
        Merged *m = &c->merged[nm++];
        m->key = res->a[i].key;
        m->val = at >= 0 ? local->a[at].val : res->a[i].val;
        m->local = at >= 0;
    }
    for (size_t i = 0; i < local->n; i++) {
        if (res->n && attrs_find(res, local->a[i].key) >= 0) continue;
        Merged *m = &c->merged[nm++];
        m->key = local->a[i].key; m->val = local->a[i].val; m->local = 1;
    }

    /* One pass: fields, then prefix maps, then the string attributes map. */
    size_t n_attrs = 0, n_extra = 0;
    Merged *attrs_list = c->merged; /* reuse: compacted in place below */
    Merged extra[64];
    Val service = {V_ABSENT};
    for (size_t i = 0; i < nm; i++) {
        Merged m = c->merged[i];
        if (slice_eq(m.key, plan->service_key)) service = m.val;
        const KeyEntry *e = NULL;
        for (int j = 0; j < ts->n_keys; j++)
            if (slice_eq(ts->keys[j].key, m.key)) { e = &ts->keys[j]; break; }
        if (e != NULL) {
            if (m.val.kind == V_NONE || (m.val.kind == V_STR && m.val.s.n == 0)) continue;
            for (int j = 0; j < e->n; j++) {
                SlotVal *sv = &slot[e->field[j]];
                if (e->first[j]) { sv->set = 2; sv->v = m.val; }
                else if (sv->set == 0) { sv->set = 1; sv->v = m.val; }
            }
            continue;
        }
        if (starts_with(m.key, ts->prefix)) {
            Slice suffix = {m.key.p + ts->prefix.n, m.key.n - ts->prefix.n};
            int known = 0;
            for (int j = 0; j < ts->n_known; j++)
                if (slice_eq(ts->known[j], suffix)) { known = 1; break; }
            if (!known) {
                if (n_extra == 64) return RC_DEFER;
                extra[n_extra].key = suffix; extra[n_extra].val = m.val;
                n_extra++;
                continue;
            }
        }
        int aside = 0;
        for (int j = 0; j < plan->n_set_aside; j++)
            if (slice_eq(plan->set_aside[j], m.key)) { aside = 1; break; }
        if (!aside && m.local) attrs_list[n_attrs++] = m; /* n_attrs <= i: safe in place */
    }
    if (n_extra && ts->prefix_field < 0) return RC_DEFER;

    /* A string body is the comment of user feedback without one. */
    if (ts->body_field >= 0 && rec->body_text.n > 0 && slot[ts->body_field].set == 0) {
        slot[ts->body_field].set = 2;
        slot[ts->body_field].v.kind = V_STR;
        slot[ts->body_field].v.s = rec->body_text;
    }

    /* None of the fields the event needs one of (user feedback without a rating, thumbs or
     * comment): a rejection, which the Python path words. */
    if (ts->n_one_of) {
        int any = 0;
        for (int i = 0; i < ts->n_one_of; i++) any |= slot[ts->one_of[i]].set != 0;
        if (!any) return RC_DEFER;
    }

    /* sum_fields: an absent total, every part present, is the parts' sum; a total present that
     * is not their sum is a rejection, which the Python path words. Else as sent. */
    for (int k = 0; k < ts->n_sums; k++) {
        const SumSpec *sp = &ts->sums[k];
        int64_t sum = 0;
        int all = 1;
        for (int j = 0; j < sp->n_parts && all; j++) {
            const SlotVal *part = &slot[sp->parts[j]];
            if (!part->set) { all = 0; break; }
            /* Another type, or a sum past int64: the field check or Python has the answer. */
            if (part->v.kind != V_INT || __builtin_add_overflow(sum, part->v.i, &sum))
                return RC_DEFER;
        }
        if (!all) continue;
        SlotVal *total = &slot[sp->total];
        if (!total->set) {
            total->set = 2;
            total->v.kind = V_INT;
            total->v.i = sum;
        } else if (total->v.kind != V_INT || total->v.i != sum) {
            return RC_DEFER;
        }
    }

    /* Timestamps. */
    int64_t time_ns = (int64_t)(rec->time_ns ? rec->time_ns : rec->observed_ns);
    if (rec->time_ns > INT64_MAX || rec->observed_ns > INT64_MAX) return RC_DEFER;
    if (time_ns == 0) time_ns = c->received_ns;
    if (time_ns > c->received_ns + plan->max_future_ns) return RC_DEFER;
    if (time_ns < c->received_ns - plan->max_age_ns) return RC_DEFER;
    int64_t time_us;
    if (ns_to_micros(time_ns, &time_us) < 0) return RC_DEFER;

    parts->has_trace = rec->trace.n > 0 && !all_zero(rec->trace);
    if (parts->has_trace) {
        if (rec->trace.n > 64) return RC_DEFER;
        for (size_t i = 0; i < rec->trace.n; i++) {
            parts->trace_hex[2 * i] = HEX[rec->trace.p[i] >> 4];
            parts->trace_hex[2 * i + 1] = HEX[rec->trace.p[i] & 15];
        }
        parts->trace_text.p = (const uint8_t *)parts->trace_hex;
        parts->trace_text.n = 2 * rec->trace.n;
    }
    int has_span = rec->span.n > 0 && !all_zero(rec->span);
    char *span_hex = parts->span_hex;
    if (has_span) {
        if (rec->span.n > 64) return RC_DEFER;
        for (size_t i = 0; i < rec->span.n; i++) {
            span_hex[2 * i] = HEX[rec->span.p[i] >> 4];
            span_hex[2 * i + 1] = HEX[rec->span.p[i] & 15];
        }
    }

    /* The Avro value, field by field in schema order, checking each as the model would. */
    c->out.n = 0;
    if (buf_put(&c->out, ts->header, 5) < 0) goto nomem;
    parts->has_key = 0;
    Slice field_text[MAX_FIELDS];
    int field_has_text[MAX_FIELDS];
    for (int fi = 0; fi < ts->n_fields; fi++) {
        const FieldSpec *f = &ts->fields[fi];
        SlotVal *sv = &slot[fi];
        field_has_text[fi] = 0;
        switch (f->source) {
        case SRC_EVENT_ID:
            if (sv->set) {
                if (sv->v.kind != V_STR) return RC_DEFER; /* numbers: coerced to text */
                parts->event_id = sv->v.s;
            } else {
                /* deterministic_event_id(type, service, trace_id, span_id, content) */
                Slice svc = {(const uint8_t *)"", 0};
                if (service.kind == V_STR) svc = service.s;
                else if (service.kind != V_ABSENT) return RC_DEFER; /* str(non-string) */
                Sha1 h;
                uint8_t digest[20], zero = 0;
                char x[40];
                sha1_init(&h);
                sha1_update(&h, plan->ns, 16);
                sha1_update(&h, ts->event_type_utf8.p, ts->event_type_utf8.n);
                sha1_update(&h, &zero, 1);
                sha1_update(&h, svc.p, svc.n);
                sha1_update(&h, &zero, 1);
                sha1_update(&h, rec->trace.p, rec->trace.n);
                sha1_update(&h, &zero, 1);
                sha1_update(&h, rec->span.p, rec->span.n);
                sha1_update(&h, &zero, 1);
                sha1_update(&h, rec->content.p, rec->content.n);
                sha1_final(&h, digest);
                for (int i = 0; i < 20; i++) {
                    x[2 * i] = HEX[digest[i] >> 4];
                    x[2 * i + 1] = HEX[digest[i] & 15];
                }
                char *o = parts->idbuf;
                memcpy(o, x, 8); o[8] = '-';
                memcpy(o + 9, x + 8, 4); o[13] = '-';
                o[14] = '5'; memcpy(o + 15, x + 13, 3); o[18] = '-';
                {
                    int nib = x[16] <= '9' ? x[16] - '0' : x[16] - 'a' + 10;
                    o[19] = "89ab"[nib & 3];
                }
                memcpy(o + 20, x + 17, 3); o[23] = '-';
                memcpy(o + 24, x + 20, 12);
                parts->event_id.p = (const uint8_t *)parts->idbuf;
                parts->event_id.n = 36;
            }
            if (check_text(c, parts->event_id.p, parts->event_id.n, f->max_len) != RC_OK)
                return RC_DEFER;
            if (f->redact && may_redact(plan, parts->event_id.p, parts->event_id.n))
                return RC_DEFER;
            field_text[fi] = parts->event_id;
            field_has_text[fi] = 1;
            if (put_str_field(c, f, parts->event_id) < 0) goto nomem;
            break;
        case SRC_TIMESTAMP:
        case SRC_RECEIVED:
            if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
            if (buf_long(&c->out, f->source == SRC_TIMESTAMP ? time_us : c->received_us) < 0)
                goto nomem;
            break;
        case SRC_CARRIER:
        case SRC_TRACE:
        case SRC_SPAN:
        case SRC_CLIENT: {
            Slice s;
            int present = 1;
            if (f->source == SRC_CARRIER) s = plan->carrier;
            else if (f->source == SRC_TRACE) { present = parts->has_trace; s = parts->trace_text; }
            else if (f->source == SRC_SPAN) {
                present = has_span; s.p = (const uint8_t *)span_hex; s.n = 2 * rec->span.n;
            } else { present = c->client_id != NULL; s = c->client; }
            if (!present) {
                if (!f->nullable) return RC_DEFER;
                if (buf_byte(&c->out, 0) < 0) goto nomem;
                break;
            }
            if (f->n_literals) {
                int ok = 0;
                for (int j = 0; j < f->n_literals; j++) ok |= slice_eq(f->literals[j], s);
                if (!ok) return RC_DEFER;
            }
            if (check_text(c, s.p, s.n, f->max_len) != RC_OK) return RC_DEFER;
            if (f->redact && may_redact(plan, s.p, s.n)) return RC_DEFER;
            field_text[fi] = s;
            field_has_text[fi] = 1;
            if (put_str_field(c, f, s) < 0) goto nomem;
            break;
        }
        case SRC_EMPTY:
            if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
            if (buf_byte(&c->out, 0) < 0) goto nomem;
            break;
        case SRC_ATTRIBUTES: {
            size_t count = n_attrs;
            if ((Py_ssize_t)count > plan->max_attributes) count = (size_t)plan->max_attributes;
            if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
            if (count) {
                if (buf_long(&c->out, (int64_t)count) < 0) goto nomem;
                for (size_t i = 0; i < count; i++) {
                    Slice key = attrs_list[i].key, text;
                    int r = attr_text(c, &attrs_list[i].val, &text);
                    if (r != RC_OK) return r;
                    size_t cut = utf8_prefix(text.p, text.n, (size_t)plan->max_attribute_value_len);
                    /* A value redaction covers is cut by the cut rule (scrub a window, drop the
                     * split token: cutrule.cut_text), which Python applies. */
                    int was_cut = cut < text.n;
                    text.n = cut;
                    if ((Py_ssize_t)utf8_len(key.p, key.n) > plan->max_text_length ||
                        (Py_ssize_t)utf8_len(text.p, text.n) > plan->max_text_length)
                        return RC_DEFER;
                    if (plan->control && (has_control(key.p, key.n) || has_control(text.p, text.n)))
                        return RC_DEFER;
                    if (was_cut || may_redact(plan, text.p, text.n)) {
                        int yes = scrubs(c, key);
                        if (yes < 0) return RC_ERROR;
                        if (yes == RC_NEEDS_GIL) return RC_NEEDS_GIL;
                        if (yes) return RC_DEFER;
                    }
                    if (buf_str(&c->out, key.p, key.n) < 0) goto nomem;
                    if (buf_str(&c->out, text.p, text.n) < 0) goto nomem;
                }
            }
            if (buf_byte(&c->out, 0) < 0) goto nomem;
            break;
        }
        case SRC_PREFIX: {
            if (f->kind != K_DBL_MAP) return RC_DEFER;
            if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
            if (n_extra) {
                if (buf_long(&c->out, (int64_t)n_extra) < 0) goto nomem;
                for (size_t i = 0; i < n_extra; i++) {
                    Val *v = &extra[i].val;
                    double d;
                    if (v->kind == V_DOUBLE) d = v->d;
                    else if (v->kind == V_INT) d = (double)v->i;
                    else return RC_DEFER;
                    if (!isfinite(d)) return RC_DEFER;
                    if (check_text(c, extra[i].key.p, extra[i].key.n, -1) != RC_OK) return RC_DEFER;
                    if (buf_str(&c->out, extra[i].key.p, extra[i].key.n) < 0) goto nomem;
                    if (buf_double(&c->out, d) < 0) goto nomem;
                }
            }
            if (buf_byte(&c->out, 0) < 0) goto nomem;
            break;
        }
        case SRC_ATTR: {
            if (!sv->set) {
                if (f->required) return RC_DEFER;
                if (f->nullable) { if (buf_byte(&c->out, 0) < 0) goto nomem; break; }
                switch (f->dflt) {
                case D_TRUE: if (buf_byte(&c->out, 1) < 0) goto nomem; break;
                case D_FALSE: if (buf_byte(&c->out, 0) < 0) goto nomem; break;
                case D_EMPTY: if (buf_byte(&c->out, 0) < 0) goto nomem; break;
                default: return RC_DEFER;
                }
                break;
            }
            Val *v = &sv->v;
            switch (f->kind) {
            case K_STRING:
                if (v->kind != V_STR) return RC_DEFER;
                if (f->n_literals) {
                    int ok = 0;
                    for (int j = 0; j < f->n_literals; j++) ok |= slice_eq(f->literals[j], v->s);
                    if (!ok) return RC_DEFER;
                }
                if (check_text(c, v->s.p, v->s.n, f->max_len) != RC_OK) return RC_DEFER;
                if (f->redact && may_redact(plan, v->s.p, v->s.n)) return RC_DEFER;
                field_text[fi] = v->s;
                field_has_text[fi] = 1;
                if (put_str_field(c, f, v->s) < 0) goto nomem;
                break;
            case K_LONG:
                if (v->kind != V_INT) return RC_DEFER;
                if ((f->has_lo && v->i < f->lo_i) || (f->has_hi && v->i > f->hi_i)) return RC_DEFER;
                if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
                if (buf_long(&c->out, v->i) < 0) goto nomem;
                break;
            case K_DOUBLE: {
                double d;
                if (v->kind == V_DOUBLE) d = v->d;
                else if (v->kind == V_INT) d = (double)v->i;
                else return RC_DEFER;
                if (isnan(d) && (f->finite || f->has_lo || f->has_hi)) return RC_DEFER;
                if (f->finite && !isfinite(d)) return RC_DEFER;
                if ((f->has_lo && !(d >= f->lo_d)) || (f->has_hi && !(d <= f->hi_d)))
                    return RC_DEFER;
                if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
                if (buf_double(&c->out, d) < 0) goto nomem;
                break;
            }
            case K_BOOL:
                if (v->kind != V_BOOL) return RC_DEFER;
                if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
                if (buf_byte(&c->out, v->i ? 1 : 0) < 0) goto nomem;
                break;
            case K_STR_LIST: {
                if (v->kind != V_ARRAY) return RC_DEFER;
                int dummy = 1;
                size_t count = 0;
                Rd a = {v->s.p, v->s.p + v->s.n};
                Field g;
                while (a.p < a.end) {
                    Val item;
                    if (rd_field(&a, &g, &dummy) < 0) return RC_DEFER;
                    if (parse_any(g.s, &item, 0, &dummy) != RC_OK || item.kind != V_STR)
                        return RC_DEFER;
                    if (check_text(c, item.s.p, item.s.n, -1) != RC_OK) return RC_DEFER;
                    count++;
                }
                if (f->nullable && buf_byte(&c->out, 2) < 0) goto nomem;
                if (count) {
                    if (buf_long(&c->out, (int64_t)count) < 0) goto nomem;
                    a.p = v->s.p;
                    while (a.p < a.end) {
                        Val item;
                        rd_field(&a, &g, &dummy);
                        parse_any(g.s, &item, 0, &dummy);
                        if (buf_str(&c->out, item.s.p, item.s.n) < 0) goto nomem;
                    }
                }
                if (buf_byte(&c->out, 0) < 0) goto nomem;
                break;
            }
            default:
                return RC_DEFER;
            }
            break;
        }
        default:
            return RC_DEFER;
        }
    }
    if ((Py_ssize_t)c->out.n > plan->max_value_bytes) return RC_DEFER;
    for (int i = 0; i < ts->n_kafka_key; i++) {
        int fi = ts->kafka_key[i];
        if (field_has_text[fi] && field_text[fi].n > 0) {
            parts->key = field_text[fi];
            parts->has_key = 1;
            break;
        }
    }
    return RC_OK;
nomem:
    return RC_NOMEM;
}

/* ---------------------------------------------------------------------------------------- */
/* The request walk. Phase 1 (``walk``) parses, maps, checks and encodes every record into C
 * memory and may run without the GIL; phase 2 (``build``) makes the Python objects.          */

/* One feedback record after phase 1, with what phase 2 needs to build it or run it again. */
typedef struct Out_ {
    int status; /* RC_OK (encoded), RC_DEFER, RC_NEEDS_GIL */
    int type;
    Py_ssize_t ri, si, li;
    size_t value_off, value_len, key_off, key_len, id_off, id_len, trace_off, trace_len;
    int has_key, has_trace;
    Slice record, resource; /* for RC_NEEDS_GIL: the bytes to run again */
    int resource_defer;
} Out;

static int arena_put(Call *c, const void *p, size_t n, size_t *off) {
    *off = c->outs.arena.n;
    return buf_put(&c->outs.arena, p, n);
}

/* Keeps an encoded record (c->out and the parts) in the arena. */
static int keep_encoded(Call *c, const Parts *parts, Out *o) {
    o->value_len = c->out.n;
    o->id_len = parts->event_id.n;
    o->has_key = parts->has_key;
    o->key_len = parts->has_key ? parts->key.n : 0;
    o->has_trace = parts->has_trace;
    o->trace_len = parts->has_trace ? parts->trace_text.n : 0;
    if (arena_put(c, c->out.p, c->out.n, &o->value_off) < 0 ||
        arena_put(c, parts->event_id.p, parts->event_id.n, &o->id_off) < 0 ||
        arena_put(c, parts->key.p, o->key_len, &o->key_off) < 0 ||
        arena_put(c, parts->trace_text.p, o->trace_len, &o->trace_off) < 0)
        return RC_NOMEM;
    return RC_OK;
}

static int outs_push(Call *c, const Out *o) {
    if (c->outs.n == c->outs.cap) {
        size_t cap = c->outs.cap ? c->outs.cap * 2 : 256;
        Out *a = PyMem_RawRealloc(c->outs.a, cap * sizeof(Out));
        if (a == NULL) return RC_NOMEM;
        c->outs.a = a;
        c->outs.cap = cap;
    }
    c->outs.a[c->outs.n++] = *o;
    return RC_OK;
}

static int parse_attrs_into(Attrs *l, Slice kv, int *canon, int depth) {
    Attr a;
    if (parse_kv(kv, &a, depth, canon) != RC_OK) return RC_WHOLE;
    return attrs_add(l, &a);
}

/* Resource: fills c->resource. */
static int parse_resource(Call *c, Slice s) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    int canon = 1, deferred = 0;
    while (r.p < r.end) {
        if (rd_field(&r, &f, &canon) < 0) return RC_WHOLE;
        if (f.num == 1 && f.wt == WT_LEN) {
            int rc = parse_attrs_into(&c->resource, f.s, &canon, 0);
            if (rc == RC_DEFER) deferred = 1;
            else if (rc != RC_OK) return rc;
        } else if (f.num == 2 && f.wt == WT_VARINT) {
            continue;
        } else {
            return RC_WHOLE; /* entity_refs and unknown fields */
        }
    }
    return deferred ? RC_DEFER : RC_OK;
}

static int parse_scope(Slice s) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    int canon = 1;
    while (r.p < r.end) {
        if (rd_field(&r, &f, &canon) < 0) return RC_WHOLE;
        if ((f.num == 1 || f.num == 2) && f.wt == WT_LEN) {
            if (!utf8_valid(f.s.p, f.s.n)) return RC_WHOLE;
        } else if (f.num == 3 && f.wt == WT_LEN) {
            Attr a;
            if (parse_kv(f.s, &a, 0, &canon) != RC_OK) return RC_WHOLE;
        } else if (f.num == 4 && f.wt == WT_VARINT) {
            continue;
        } else {
            return RC_WHOLE;
        }
    }
    return RC_OK;
}

/* One LogRecord: fills *o for a feedback record (o->status != -1), counts it ignored
 * otherwise. Returns RC_OK, RC_WHOLE, RC_NOMEM or RC_ERROR (GIL held only). */
static int run_record(Call *c, Slice s, int resource_defer, Out *o) {
    Record rec;
    memset(&rec, 0, sizeof rec);
    rec.canon = 1;
    rec.content = s;
    rec.trace.p = rec.span.p = rec.event_name.p = (const uint8_t *)"";
    rec.trace.n = rec.span.n = rec.event_name.n = 0;
    c->record.n = 0;
    o->status = -1;
    Rd r = {s.p, s.p + s.n};
    Field f;
    uint32_t last = 0;
    int record_defer = 0, has_body = 0, legacy_found = 0;
    Slice legacy = {(const uint8_t *)"", 0};
    int legacy_is_str = 0;
    while (r.p < r.end) {
        if (rd_field(&r, &f, &rec.canon) < 0) return RC_WHOLE;
        if (f.num < last || (f.num == last && f.num != 6)) rec.canon = 0;
        last = f.num;
        switch (f.num) {
        case 1:
        case 11:
            if (f.wt != WT_I64) return RC_WHOLE;
            if (f.v == 0) rec.canon = 0;
            if (f.num == 1) rec.time_ns = f.v; else rec.observed_ns = f.v;
            break;
        case 2:
        case 7:
            if (f.wt != WT_VARINT) return RC_WHOLE;
            /* Canonical: non-zero; an enum (int32) below 2^31 or sign-extended to 64 bits; a
             * uint32 below 2^32. Anything else protobuf re-encodes, changing the content id. */
            if (f.v == 0) rec.canon = 0;
            else if (f.num == 2 && f.v >= 0x80000000ull && f.v < 0xFFFFFFFF80000000ull)
                rec.canon = 0;
            else if (f.num == 7 && f.v > 0xFFFFFFFFull) rec.canon = 0;
            break;
        case 8:
            if (f.wt != WT_I32) return RC_WHOLE;
            if (f.v == 0) rec.canon = 0;
            break;
        case 3:
        case 12:
            if (f.wt != WT_LEN || !utf8_valid(f.s.p, f.s.n)) return RC_WHOLE;
            if (f.s.n == 0) rec.canon = 0;
            if (f.num == 12) rec.event_name = f.s;
            break;
        case 5: {
            if (f.wt != WT_LEN || has_body) return RC_WHOLE; /* a second body is merged */
            has_body = 1;
            Val body;
            if (parse_any(f.s, &body, 0, &rec.canon) != RC_OK) return RC_WHOLE;
            rec.body_kvlist = body.kind == V_KVLIST;
            if (body.kind == V_STR) rec.body_text = body.s;
            else rec.body_text.n = 0;
            break;
        }
        case 6: {
            if (f.wt != WT_LEN) return RC_WHOLE;
            Attr a;
            if (parse_kv(f.s, &a, 0, &rec.canon) != RC_OK) return RC_WHOLE;
            if (!legacy_found && slice_eq(a.key, c->plan->event_name_key)) {
                legacy_found = 1;
                legacy_is_str = a.val.kind == V_STR;
                legacy = a.val.s;
            }
            int rc = attrs_add(&c->record, &a);
            if (rc == RC_DEFER) record_defer = 1;
            else if (rc != RC_OK) return rc; /* RC_NOMEM */
            break;
        }
        case 9:
        case 10:
            if (f.wt != WT_LEN) return RC_WHOLE;
            if (f.s.n == 0) rec.canon = 0;
            if (f.num == 9) rec.trace = f.s; else rec.span = f.s;
            break;
        default:
            return RC_WHOLE;
        }
    }
    /* Which event, if any (record.event_name, else the first event.name attribute). */
    Slice name = rec.event_name;
    if (name.n == 0) {
        if (!legacy_found || !legacy_is_str) { c->outs.ignored++; return RC_OK; }
        name = legacy;
    }
    const TypeSpec *ts = NULL;
    int evaluation = slice_eq(name, c->plan->evaluation_event);
    if (!evaluation) {
        for (int i = 0; i < c->plan->n_types; i++)
            if (slice_eq(c->plan->types[i].event_name, name)) { ts = &c->plan->types[i]; break; }
        if (ts == NULL) {
            const Slice pre = c->plan->feedback_prefix;
            c->outs.ignored++;
            if (name.n >= pre.n && memcmp(name.p, pre.p, pre.n) == 0) c->outs.unknown++;
            return RC_OK;
        }
    }
    o->status = RC_DEFER;
    o->type = ts != NULL ? (int)(ts - c->plan->types) : -1;
    o->record = s;
    o->resource = c->resource_slice;
    o->resource_defer = resource_defer;
    if (!evaluation && ts->native && rec.canon && !record_defer && !resource_defer &&
        !rec.body_kvlist) {
        Parts parts;
        int rc = encode_record(c, ts, &rec, &parts);
        if (rc < 0) return rc;
        if (rc == RC_OK) {
            if (keep_encoded(c, &parts, o) < 0) return RC_NOMEM;
            o->status = RC_OK;
        } else if (rc == RC_NEEDS_GIL) {
            o->status = RC_NEEDS_GIL;
        }
    }
    return RC_OK;
}

static int walk_scope_logs(Call *c, Slice s, int resource_defer, Py_ssize_t ri, Py_ssize_t si) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    int canon = 1, scopes = 0;
    /* First pass: everything but the records (which may come in any order). */
    while (r.p < r.end) {
        if (rd_field(&r, &f, &canon) < 0) return RC_WHOLE;
        if (f.num == 1 && f.wt == WT_LEN) {
            if (scopes++ || parse_scope(f.s) != RC_OK) return RC_WHOLE;
        } else if (f.num == 3 && f.wt == WT_LEN) {
            if (!utf8_valid(f.s.p, f.s.n)) return RC_WHOLE;
        } else if (!(f.num == 2 && f.wt == WT_LEN)) {
            return RC_WHOLE;
        }
    }
    r.p = s.p;
    Py_ssize_t li = 0;
    while (r.p < r.end) {
        rd_field(&r, &f, &canon);
        if (f.num != 2) continue;
        Out o;
        memset(&o, 0, sizeof o);
        int rc = run_record(c, f.s, resource_defer, &o);
        if (rc != RC_OK) return rc;
        if (o.status != -1) {
            o.ri = ri; o.si = si; o.li = li;
            if (outs_push(c, &o) < 0) return RC_NOMEM;
        }
        li++;
    }
    return RC_OK;
}

static int walk_resource_logs(Call *c, Slice s, Py_ssize_t ri) {
    Rd r = {s.p, s.p + s.n};
    Field f;
    int canon = 1, resources = 0, resource_defer = 0;
    c->resource.n = 0;
    c->resource_slice.p = (const uint8_t *)"";
    c->resource_slice.n = 0;
    while (r.p < r.end) {
        if (rd_field(&r, &f, &canon) < 0) return RC_WHOLE;
        if (f.num == 1 && f.wt == WT_LEN) {
            if (resources++) return RC_WHOLE; /* a second resource is merged */
            c->resource_slice = f.s;
            int rc = parse_resource(c, f.s);
            if (rc == RC_DEFER) resource_defer = 1;
            else if (rc != RC_OK) return rc;
        } else if (f.num == 3 && f.wt == WT_LEN) {
            if (!utf8_valid(f.s.p, f.s.n)) return RC_WHOLE;
        } else if (!(f.num == 2 && f.wt == WT_LEN)) {
            return RC_WHOLE;
        }
    }
    r.p = s.p;
    Py_ssize_t si = 0;
    while (r.p < r.end) {
        rd_field(&r, &f, &canon);
        if (f.num != 2) continue;
        int rc = walk_scope_logs(c, f.s, resource_defer, ri, si++);
        if (rc != RC_OK) return rc;
    }
    return RC_OK;
}

/* Phase 1 over the whole request. Touches no Python object. */
static int walk(Call *c, const uint8_t *p, size_t n) {
    Rd r = {p, p + n};
    Field f;
    int canon = 1;
    Py_ssize_t ri = 0;
    /* Validate the framing first: a bad byte anywhere means protobuf decides, for all. */
    while (r.p < r.end)
        if (rd_field(&r, &f, &canon) < 0 || f.num != 1 || f.wt != WT_LEN) return RC_WHOLE;
    r.p = p;
    while (r.p < r.end) {
        rd_field(&r, &f, &canon);
        int rc = walk_resource_logs(c, f.s, ri++);
        if (rc != RC_OK) return rc;
    }
    return RC_OK;
}

/* Phase 2: a record that needed a Python call, run again with the GIL held. */
static int rerun(Call *c, Out *o) {
    Out again;
    memset(&again, 0, sizeof again);
    c->resource.n = 0;
    c->resource_slice = o->resource;
    int rc = parse_resource(c, o->resource);
    if (rc < 0) return rc;
    rc = run_record(c, o->record, o->resource_defer || rc == RC_DEFER, &again);
    if (rc > 0) { /* the same bytes parsed in phase 1: unreachable */
        PyErr_SetString(PyExc_RuntimeError, "native path: a record parsed once, not twice");
        return RC_ERROR;
    }
    if (rc < 0) return rc;
    again.ri = o->ri; again.si = o->si; again.li = o->li;
    *o = again;
    return RC_OK;
}

/* The OutboundRecord of an encoded record. New reference, NULL on error. */
static PyObject *make_record(Call *c, const Out *o) {
    const TypeSpec *ts = &c->plan->types[o->type];
    const char *arena = (const char *)c->outs.arena.p;
    PyObject *value = NULL, *key = NULL, *headers = NULL, *event_id = NULL, *id_bytes = NULL;
    PyObject *result = NULL, *h = NULL;
    value = PyBytes_FromStringAndSize(arena + o->value_off, (Py_ssize_t)o->value_len);
    if (value == NULL) goto done;
    if (o->has_key) {
        key = PyBytes_FromStringAndSize(arena + o->key_off, (Py_ssize_t)o->key_len);
        if (key == NULL) goto done;
    } else {
        key = Py_NewRef(Py_None);
    }
    event_id = PyUnicode_DecodeUTF8(arena + o->id_off, (Py_ssize_t)o->id_len, NULL);
    if (event_id == NULL) goto done;
    id_bytes = PyBytes_FromStringAndSize(arena + o->id_off, (Py_ssize_t)o->id_len);
    if (id_bytes == NULL) goto done;
    PyObject *lineage = c->plan->receiver_headers;
    Py_ssize_t nh = 3 + o->has_trace + (c->client_header != NULL) + PyTuple_GET_SIZE(lineage);
    headers = PyList_New(nh);
    if (headers == NULL) goto done;
    Py_ssize_t i = 0;
    PyList_SET_ITEM(headers, i++, Py_NewRef(ts->type_header));
    h = PyTuple_Pack(2, c->event_id_name, id_bytes);
    if (h == NULL) goto done;
    PyList_SET_ITEM(headers, i++, h);
    PyList_SET_ITEM(headers, i++, Py_NewRef(ts->version_header));
    if (o->has_trace) {
        h = Py_BuildValue("(Oy#)", c->trace_id_name, arena + o->trace_off,
                          (Py_ssize_t)o->trace_len);
        if (h == NULL) goto done;
        PyList_SET_ITEM(headers, i++, h);
    }
    if (c->client_header != NULL) PyList_SET_ITEM(headers, i++, Py_NewRef(c->client_header));
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(lineage); j++)
        PyList_SET_ITEM(headers, i++, Py_NewRef(PyTuple_GET_ITEM(lineage, j)));
    PyObject *args[6] = {ts->topic, key, value, headers, event_id, ts->event_type};
    result = PyObject_Vectorcall(c->plan->record_class, args, 6, NULL);
done:
    Py_XDECREF(value);
    Py_XDECREF(key);
    Py_XDECREF(headers);
    Py_XDECREF(event_id);
    Py_XDECREF(id_bytes);
    return result;
}

/* Phase 2 over the whole request: (slots, deferred, ignored, unknown). New reference, NULL on
 * error. */
static PyObject *build(Call *c) {
    PyObject *slots = PyList_New((Py_ssize_t)c->outs.n), *deferred = PyList_New(0);
    PyObject *ret = NULL;
    if (slots == NULL || deferred == NULL) goto done;
    for (size_t k = 0; k < c->outs.n; k++) {
        Out *o = &c->outs.a[k];
        if (o->status == RC_NEEDS_GIL) {
            int rc = rerun(c, o);
            if (rc == RC_NOMEM) PyErr_NoMemory();
            if (rc != RC_OK) goto done;
        }
        if (o->status == RC_OK) {
            PyObject *record = make_record(c, o);
            if (record == NULL) goto done;
            PyList_SET_ITEM(slots, (Py_ssize_t)k, record);
            continue;
        }
        PyList_SET_ITEM(slots, (Py_ssize_t)k, Py_NewRef(Py_None));
        PyObject *where = Py_BuildValue("(nnn)", o->ri, o->si, o->li);
        if (where == NULL) goto done;
        int err = PyList_Append(deferred, where);
        Py_DECREF(where);
        if (err < 0) goto done;
    }
    ret = Py_BuildValue("(OOnn)", slots, deferred, c->outs.ignored, c->outs.unknown);
done:
    Py_XDECREF(slots);
    Py_XDECREF(deferred);
    return ret;
}

/* Requests at least this big are walked without the GIL, so that other request threads run
 * Python meanwhile. Smaller ones keep it: taking the GIL back can wait for the switch
 * interval (5 ms) when other threads are busy, which would dominate a small request. */
static Py_ssize_t release_gil_bytes = 32 * 1024;

PyDoc_STRVAR(export_logs_doc,
"export_logs(payload, received_ns, client_id) -> (slots, deferred, ignored, unknown) or None\n\n"
"Map, check and encode the feedback records of a serialized ExportLogsServiceRequest.\n"
"``slots`` has one entry per feedback record in request order: the OutboundRecord, or None\n"
"where the record is deferred to the Python path; ``deferred`` lists those records'\n"
"(resource, scope, record) indices in order; ``ignored`` counts records that are not\n"
"feedback, ``unknown`` those of them named ``feedback.*`` that match no type (misspelt).\n"
"None means the whole request goes to the Python path.");

static PyObject *Plan_export_logs(Plan *self, PyObject *args) {
    Py_buffer view;
    long long received_ns;
    PyObject *client_id;
    if (!PyArg_ParseTuple(args, "y*LO", &view, &received_ns, &client_id)) return NULL;
    Call c;
    memset(&c, 0, sizeof c);
    c.plan = self;
    c.received_ns = received_ns;
    c.gil = 1;
    PyObject *ret = NULL;
    int rc = RC_OK;
    if (ns_to_micros(c.received_ns, &c.received_us) < 0) { rc = RC_WHOLE; goto done; }
    c.event_id_name = self->event_id_header; /* borrowed: the plan outlives the call */
    c.trace_id_name = self->trace_id_header;
    if (client_id != Py_None) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(client_id, &n);
        if (p == NULL) {
            /* Not UTF-8 encodable (a lone surrogate from a token): Python rejects each event. */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) goto done;
            PyErr_Clear();
            rc = RC_WHOLE;
            goto done;
        }
        c.client_id = client_id;
        c.client.p = (const uint8_t *)p;
        c.client.n = (size_t)n;
        c.client_header = Py_BuildValue("(Oy#)", self->client_id_header, p, n);
        if (c.client_header == NULL) goto done;
    }
    if (view.len >= release_gil_bytes) {
        Py_BEGIN_ALLOW_THREADS
        c.gil = 0;
        rc = walk(&c, view.buf, (size_t)view.len);
        c.gil = 1;
        Py_END_ALLOW_THREADS
    } else {
        rc = walk(&c, view.buf, (size_t)view.len);
    }
    if (rc == RC_OK) ret = build(&c);
    else if (rc == RC_NOMEM) PyErr_NoMemory();
done:
    if (ret == NULL && rc == RC_WHOLE && !PyErr_Occurred()) ret = Py_NewRef(Py_None);
    Py_XDECREF(c.client_header);
    PyMem_RawFree(c.resource.a);
    PyMem_RawFree(c.record.a);
    PyMem_RawFree(c.merged);
    PyMem_RawFree(c.out.p);
    PyMem_RawFree(c.text.p);
    PyMem_RawFree(c.outs.a);
    PyMem_RawFree(c.outs.arena.p);
    PyBuffer_Release(&view);
    return ret;
}

static PyMethodDef Plan_methods[] = {
    {"export_logs", (PyCFunction)Plan_export_logs, METH_VARARGS, export_logs_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "otlp_feedback._native.Plan",
    .tp_doc = "The compiled tables of the native fast path (see otlp_feedback.native).",
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Plan_init,
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_methods = Plan_methods,
};

static PyObject *native_sha1_hex(PyObject *mod, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Sha1 h;
    uint8_t d[20];
    char x[40];
    sha1_init(&h);
    sha1_update(&h, view.buf, (size_t)view.len);
    sha1_final(&h, d);
    PyBuffer_Release(&view);
    for (int i = 0; i < 20; i++) { x[2 * i] = HEX[d[i] >> 4]; x[2 * i + 1] = HEX[d[i] & 15]; }
    return PyUnicode_FromStringAndSize(x, 40);
}

static PyObject *native_micros(PyObject *mod, PyObject *arg) {
    long long ns = PyLong_AsLongLong(arg);
    int64_t us;
    if (ns == -1 && PyErr_Occurred()) return NULL;
    if (ns_to_micros(ns, &us) < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(us);
}

static PyObject *native_gate_fires(PyObject *mod, PyObject *args) {
    /* The plan's redaction gate on one text, so that tests hold it to Trigger.fires. */
    PyObject *gate_obj;
    const char *p;
    Py_ssize_t n;
    Gate gate;
    if (!PyArg_ParseTuple(args, "Os#", &gate_obj, &p, &n)) return NULL;
    if (parse_gate(gate_obj, &gate, NULL) < 0) return NULL;
    return PyBool_FromLong(gate_fires(&gate, (const uint8_t *)p, (size_t)n));
}

static PyObject *native_has_control(PyObject *mod, PyObject *arg) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(arg, &n);
    if (p == NULL) return NULL;
    return PyBool_FromLong(has_control((const uint8_t *)p, (size_t)n));
}

static PyObject *native_set_gil_release_bytes(PyObject *mod, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t old = release_gil_bytes;
    release_gil_bytes = n;
    return PyLong_FromSsize_t(old);
}

static PyMethodDef module_methods[] = {
    {"set_gil_release_bytes", native_set_gil_release_bytes, METH_O,
     "Set the request size from which the walk runs without the GIL; returns the old one "
     "(tests set 0 to run every request that way)."},
    {"sha1_hex", native_sha1_hex, METH_O, "sha1(data).hexdigest() (tests hold it to hashlib)."},
    {"micros", native_micros, METH_O,
     "Micros since the epoch of datetime.fromtimestamp(ns / 1e9, UTC), or None."},
    {"gate_fires", native_gate_fires, METH_VARARGS,
     "gate_fires(gate, text): whether the redaction gate (native.RedactionGate) says the "
     "redactor may change text (tests hold it to the detectors' Trigger.fires)."},
    {"has_control", native_has_control, METH_O,
     "Whether CONTROL_CHARACTERS matches the text (tests hold it to the regex)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "otlp_feedback._native",
    "The native fast path for OTLP logs (see otlp_feedback.native).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

/* The enums a plan's FieldPlan uses (source, kind, default), by name: ``native.py`` takes their
 * numbers from here, so the numbering exists once. */
static int add_enum(PyObject *m, const char *name, const char *const *names, int n) {
    PyObject *d = PyDict_New();
    if (d == NULL) return -1;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(i);
        if (v == NULL || PyDict_SetItemString(d, names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    int err = PyModule_AddObjectRef(m, name, d);
    Py_DECREF(d);
    return err;
}

static const char *const SOURCE_NAMES[] = {"attr", "event_id", "timestamp", "received", "carrier",
                                           "trace", "span", "attributes", "client", "empty",
                                           "prefix"};
static const char *const KIND_NAMES[] = {"string", "long", "double", "bool", "timestamp",
                                         "str_list", "str_map", "dbl_map"};
static const char *const DEFAULT_NAMES[] = {"none", "true", "false", "empty"};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "MAX_DIGIT_RUNS", MAX_DIGIT_RUNS) < 0 ||
        add_enum(m, "SOURCES", SOURCE_NAMES, SRC_PREFIX + 1) < 0 ||
        add_enum(m, "KINDS", KIND_NAMES, K_DBL_MAP + 1) < 0 ||
        add_enum(m, "DEFAULTS", DEFAULT_NAMES, D_EMPTY + 1) < 0 ||
        PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
