/* A row's canonical text, hashed: the checksum every stored row carries and the short
 * per-field hashes sync compares (core/repository/changes.py row_checksum,
 * core/sync/tables.py field_hashes).
 *
 * Both hash the same canonical spelling of each value (changes._canonical): "~" for
 * None, "b:" and lowercase hex for bytes, "s:" and the text for str, ints and UUIDs,
 * "i:0"/"i:1" for booleans, "t:" and isoformat(timespec="microseconds") for datetimes.
 * A sync pass computes them for every row it sends or receives, a backup and an
 * integrity scan for every row they read: in Python a value cost a dictionary lookup, a
 * lambda and an f-string (11-14 us a row of a client or a session, profiled: a tenth
 * of a sync pass). Here the common types are spelled directly into one buffer, and any
 * other value (a date, a JSON document, an enum, a datetime in a zone other than UTC,
 * a subclass of anything) is spelled by the Python function the caller passes, so the
 * text never depends on which way ran (tests/core/repository/test_canon.py holds the
 * two to the same bytes).
 *
 * SHA-256 is OpenSSL's. BLAKE2b is written out here (RFC 7693): field hashes are
 * BLAKE2b with a 6-byte digest, which is its own parameter of the function (not a
 * truncation of a longer digest), and OpenSSL 3.0 offers only the 64-byte one.
 *
 * Built by `make install` beside _text.c, optional the same way: without it the Python
 * functions run (same results, slower).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>
#include <openssl/evp.h>

#include "_buffer.h"
#include "_iso.h"

static PyObject *uuid_type = NULL;     /* uuid.UUID */
static PyObject *int_name = NULL;      /* "int" */
static PyObject *mask64 = NULL;        /* 2**64 - 1 */
static PyObject *sixty_four = NULL;    /* 64 */
static const EVP_MD *sha256 = NULL;
static PyObject *enum_class = NULL;    /* enum.Enum */
static PyObject *enum_types = NULL;    /* {type: bool}: whether a type is an Enum */
static PyObject *value_name = NULL;    /* "value" */
static PyObject *enum_values = NULL;   /* {address of a member: (member, its value)} */

/* An enum member's value. `member.value` is a Python-level property (enum.property),
 * about a microsecond a call, and a session row has two enums: so each member's value
 * is kept, by the member's address (Enum.__hash__ is Python-level too). The entry holds
 * the member itself, so the address cannot be reused while it is kept, and a hit is
 * checked to be that member. New reference, or NULL with an exception. */
static PyObject *enum_value(PyObject *member)
{
    PyObject *key = PyLong_FromVoidPtr(member);
    if (key == NULL)
        return NULL;
    PyObject *known = PyDict_GetItemWithError(enum_values, key);
    if (known != NULL && PyTuple_GET_ITEM(known, 0) == member) {
        Py_DECREF(key);
        PyObject *value = PyTuple_GET_ITEM(known, 1);
        Py_INCREF(value);
        return value;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    PyObject *value = PyObject_GetAttr(member, value_name);
    if (value != NULL && PyDict_GET_SIZE(enum_values) < 4096) {
        PyObject *entry = PyTuple_Pack(2, member, value);
        if (entry == NULL || PyDict_SetItem(enum_values, key, entry) < 0)
            Py_CLEAR(value);
        Py_XDECREF(entry);
    }
    Py_DECREF(key);
    return value;
}

static int enum_type_seen(PyObject *type)
{
    PyObject *known = PyDict_GetItemWithError(enum_types, type);
    if (known != NULL)
        return known == Py_True;
    if (PyErr_Occurred())
        return -1;
    int is = PyObject_IsSubclass(type, enum_class);
    if (is < 0)
        return -1;
    if (PyDict_GET_SIZE(enum_types) < 256 && PyDict_SetItem(enum_types, type, is ? Py_True : Py_False) < 0)
        return -1;
    return is;
}

static const char HEX[] = "0123456789abcdef";

static int put_hex(Out *b, const unsigned char *s, size_t n)
{
    if (out_reserve(b, 2 * n) < 0)
        return -1;
    char *at = b->data + b->length;
    for (size_t i = 0; i < n; i++) {
        *at++ = HEX[s[i] >> 4];
        *at++ = HEX[s[i] & 15];
    }
    b->length += 2 * n;
    return 0;
}

static int put_text(Out *b, const char *prefix, PyObject *text)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL)
        return -1;
    if (out_put(b, prefix, 2) < 0)
        return -1;
    return out_put(b, s, (size_t)n);
}

/* "s:" and a UUID's 36-character form, from its 128-bit integer. */
static int put_uuid(Out *b, PyObject *v)
{
    PyObject *number = PyObject_GetAttr(v, int_name);
    if (number == NULL)
        return -1;
    unsigned char raw[16];
#if PY_VERSION_HEX < 0x030D0000
    int failed = !PyLong_CheckExact(number) ||
                 _PyLong_AsByteArray((PyLongObject *)number, raw, 16, 0, 0) < 0;
    Py_DECREF(number);
    if (failed) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a UUID's int must be an int");
        return -1;
    }
#else
    PyObject *high = PyNumber_Rshift(number, sixty_four);
    PyObject *low = high == NULL ? NULL : PyNumber_And(number, mask64);
    Py_DECREF(number);
    if (low == NULL) {
        Py_XDECREF(high);
        return -1;
    }
    unsigned long long h = PyLong_AsUnsignedLongLong(high), l = PyLong_AsUnsignedLongLong(low);
    Py_DECREF(high);
    Py_DECREF(low);
    if (PyErr_Occurred())
        return -1;
    for (int i = 0; i < 8; i++) {
        raw[i] = (unsigned char)(h >> (56 - 8 * i));
        raw[8 + i] = (unsigned char)(l >> (56 - 8 * i));
    }
#endif
    if (out_reserve(b, 38) < 0)
        return -1;
    char *at = b->data + b->length;
    *at++ = 's';
    *at++ = ':';
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *at++ = '-';
        *at++ = HEX[raw[i] >> 4];
        *at++ = HEX[raw[i] & 15];
    }
    b->length += 38;
    return 0;
}

/* "t:" and isoformat(timespec="microseconds") of a datetime whose zone is UTC itself:
 * YYYY-MM-DDTHH:MM:SS.ffffff+00:00. */
static int put_utc_datetime(Out *b, PyObject *v)
{
    if (out_reserve(b, 34) < 0)
        return -1;
    char *at = b->data + b->length;
    *at++ = 't';
    *at++ = ':';
    at = put_date(at, v);
    *at++ = 'T';
    at = put_clock(at, v);
    *at++ = '.';
    at = put_digits(at, PyDateTime_DATE_GET_MICROSECOND(v), 6);
    memcpy(at, "+00:00", 6);
    b->length += 34;
    return 0;
}

/* The canonical text of one value, appended to `b`. */
static int put_canonical(Out *b, PyObject *v, PyObject *fallback)
{
    if (v == Py_None)
        return out_put(b, "~", 1);
    PyTypeObject *type = Py_TYPE(v);
    if (type == &PyBytes_Type) {
        if (out_put(b, "b:", 2) < 0)
            return -1;
        return put_hex(b, (const unsigned char *)PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v));
    }
    if (type == &PyUnicode_Type)
        return put_text(b, "s:", v);
    if (type == &PyBool_Type)
        return out_put(b, v == Py_True ? "i:1" : "i:0", 3);
    if (type == &PyLong_Type) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            char digits[24];
            int len = snprintf(digits, sizeof(digits), "%lld", n);
            if (out_put(b, "s:", 2) < 0)
                return -1;
            return out_put(b, digits, (size_t)len);
        }
    }
    else if ((PyObject *)type == uuid_type)
        return put_uuid(b, v);
    else if (PyDateTime_CheckExact(v) && PyDateTime_DATE_GET_TZINFO(v) == PyDateTime_TimeZone_UTC)
        return put_utc_datetime(b, v);
    else if (PyDate_CheckExact(v)) {         /* str(date): YYYY-MM-DD */
        if (out_reserve(b, 12) < 0)
            return -1;
        char *at = b->data + b->length;
        *at++ = 's';
        *at++ = ':';
        put_date(at, v);
        b->length += 12;
        return 0;
    }
    else {
        /* An enum member whose value is a str: "s:" and the value (what _canonical
         * writes for enums). Whether a type is an Enum is asked once per type. */
        int is_enum = enum_type_seen((PyObject *)type);
        if (is_enum < 0)
            return -1;
        if (is_enum) {
            PyObject *value = enum_value(v);
            if (value == NULL)
                return -1;
            int rc = 1;
            if (PyUnicode_CheckExact(value))
                rc = put_text(b, "s:", value);
            Py_DECREF(value);
            if (rc <= 0)
                return rc;
        }
    }
    PyObject *text = PyObject_CallOneArg(fallback, v);
    if (text == NULL)
        return -1;
    if (!PyUnicode_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "the canonical form of a value must be a str");
        return -1;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = s == NULL ? -1 : out_put(b, s, (size_t)n);
    Py_DECREF(text);
    return rc;
}

static PyObject *item_of(PyObject *row, PyObject *name)
{
    if (PyDict_CheckExact(row)) {
        PyObject *v = PyDict_GetItemWithError(row, name);
        if (v == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, name);
            return NULL;
        }
        Py_INCREF(v);
        return v;
    }
    return PyObject_GetItem(row, name);
}

/* The canonical text of row[name], appended to `b`. */
static int put_column(Out *b, PyObject *row, PyObject *name, PyObject *fallback)
{
    PyObject *v = item_of(row, name);
    if (v == NULL)
        return -1;
    int rc = put_canonical(b, v, fallback);
    Py_DECREF(v);
    return rc;
}

/* checksum(row, names, fallback) -> str: the hex SHA-256 of "name=<canonical>\n" for each
 * of `names` (a tuple of str, in the order to hash them). */
static PyObject *checksum(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *row, *names, *fallback;
    if (!PyArg_ParseTuple(args, "OO!O:checksum", &row, &PyTuple_Type, &names, &fallback))
        return NULL;
    char storage[2048];       /* most rows fit: no allocation per row */
    Out b;
    out_start(&b, storage, sizeof(storage));
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(name, &n);
        if (s == NULL || out_put(&b, s, (size_t)n) < 0 || out_put(&b, "=", 1) < 0)
            goto fail;
        if (put_column(&b, row, name, fallback) < 0 || out_put(&b, "\n", 1) < 0)
            goto fail;
    }
    unsigned char digest[32];
    unsigned int size = 0;
    if (!EVP_Digest(b.data, b.length, digest, &size, sha256, NULL) || size != 32) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        goto fail;
    }
    out_free(&b);
    char hex[64];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = HEX[digest[i] >> 4];
        hex[2 * i + 1] = HEX[digest[i] & 15];
    }
    return PyUnicode_FromStringAndSize(hex, 64);
fail:
    out_free(&b);
    return NULL;
}

/* --- BLAKE2b (RFC 7693) ------------------------------------------------------------- */

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

#define G(a, b, c, d, x, y)                 \
    do {                                    \
        v[a] = v[a] + v[b] + (x);           \
        v[d] = rotr64(v[d] ^ v[a], 32);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 24);     \
        v[a] = v[a] + v[b] + (y);           \
        v[d] = rotr64(v[d] ^ v[a], 16);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 63);     \
    } while (0)

static void compress(uint64_t h[8], const unsigned char block[128], uint64_t counter, int last)
{
    uint64_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= counter;          /* inputs here are far below 2**64 bytes: the high word stays 0 */
    if (last)
        v[14] = ~v[14];
    for (int i = 0; i < 16; i++)
        m[i] = load64(block + 8 * i);
    /* Rounds written out, so each message index is a constant (a loop over SIGMA
     * left them as loads: a third slower). */
#define ROUND(r)                                                  \
    do {                                                          \
        G(0, 4, 8, 12, m[SIGMA[r][0]], m[SIGMA[r][1]]);           \
        G(1, 5, 9, 13, m[SIGMA[r][2]], m[SIGMA[r][3]]);           \
        G(2, 6, 10, 14, m[SIGMA[r][4]], m[SIGMA[r][5]]);          \
        G(3, 7, 11, 15, m[SIGMA[r][6]], m[SIGMA[r][7]]);          \
        G(0, 5, 10, 15, m[SIGMA[r][8]], m[SIGMA[r][9]]);          \
        G(1, 6, 11, 12, m[SIGMA[r][10]], m[SIGMA[r][11]]);        \
        G(2, 7, 8, 13, m[SIGMA[r][12]], m[SIGMA[r][13]]);         \
        G(3, 4, 9, 14, m[SIGMA[r][14]], m[SIGMA[r][15]]);         \
    } while (0)
    ROUND(0); ROUND(1); ROUND(2); ROUND(3); ROUND(4); ROUND(5);
    ROUND(6); ROUND(7); ROUND(8); ROUND(9); ROUND(10); ROUND(11);
#undef ROUND
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* Unkeyed BLAKE2b of `data` with an `outlen`-byte digest (1..64). */
static void blake2b(const unsigned char *data, size_t len, unsigned char *out, int outlen)
{
    uint64_t h[8];
    memcpy(h, IV, sizeof(h));
    h[0] ^= 0x01010000ULL ^ (uint64_t)outlen;
    size_t done = 0;
    while (len - done > 128) {
        compress(h, data + done, (uint64_t)(done + 128), 0);
        done += 128;
    }
    unsigned char last[128] = {0};
    memcpy(last, data + done, len - done);
    compress(h, last, (uint64_t)len, 1);
    for (int i = 0; i < outlen; i++)
        out[i] = (unsigned char)(h[i / 8] >> (8 * (i % 8)));
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* field_hashes(row, plan, fallback) -> dict: for each (field, columns) of `plan`, the
 * base64 of the 6-byte BLAKE2b of the columns' canonical texts joined by NUL bytes. */
static PyObject *field_hashes(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *row, *plan, *fallback;
    if (!PyArg_ParseTuple(args, "OO!O:field_hashes", &row, &PyTuple_Type, &plan, &fallback))
        return NULL;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    char storage[2048];       /* most rows fit: no allocation per row */
    Out b;
    out_start(&b, storage, sizeof(storage));
    Py_ssize_t count = PyTuple_GET_SIZE(plan);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(entry, 1))) {
            PyErr_SetString(PyExc_TypeError, "a field plan entry is (name, (column, ...))");
            goto fail;
        }
        PyObject *columns = PyTuple_GET_ITEM(entry, 1);
        b.length = 0;
        for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(columns); c++) {
            if ((c && out_put(&b, "\0", 1) < 0) || put_column(&b, row, PyTuple_GET_ITEM(columns, c), fallback) < 0)
                goto fail;
        }
        unsigned char d[6];
        blake2b((const unsigned char *)b.data, b.length, d, 6);
        char text[8];
        for (int k = 0; k < 2; k++) {
            uint32_t w = ((uint32_t)d[3 * k] << 16) | ((uint32_t)d[3 * k + 1] << 8) | d[3 * k + 2];
            text[4 * k] = B64[(w >> 18) & 63];
            text[4 * k + 1] = B64[(w >> 12) & 63];
            text[4 * k + 2] = B64[(w >> 6) & 63];
            text[4 * k + 3] = B64[w & 63];
        }
        PyObject *value = PyUnicode_FromStringAndSize(text, 8);
        if (value == NULL || PyDict_SetItem(out, PyTuple_GET_ITEM(entry, 0), value) < 0) {
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(value);
    }
    out_free(&b);
    return out;
fail:
    out_free(&b);
    Py_DECREF(out);
    return NULL;
}

/* blake2b(data, digest_size) -> bytes: for the tests, against hashlib. */
static PyObject *blake2b_py(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer data;
    int size;
    if (!PyArg_ParseTuple(args, "y*i:blake2b", &data, &size))
        return NULL;
    if (size < 1 || size > 64) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "digest_size must be 1..64");
        return NULL;
    }
    unsigned char out[64];
    blake2b(data.buf, (size_t)data.len, out, size);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, size);
}

static PyMethodDef methods[] = {
    {"checksum", checksum, METH_VARARGS, "The row checksum (changes.row_checksum) of one row."},
    {"field_hashes", field_hashes, METH_VARARGS, "Short per-field hashes (sync.tables.field_hashes)."},
    {"blake2b", blake2b_py, METH_VARARGS, "Unkeyed BLAKE2b with a digest of the given size."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_canon", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__canon(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    sha256 = EVP_sha256();
    PyObject *uuid = PyImport_ImportModule("uuid");
    if (uuid == NULL)
        return NULL;
    uuid_type = PyObject_GetAttrString(uuid, "UUID");
    Py_DECREF(uuid);
    int_name = PyUnicode_InternFromString("int");
    value_name = PyUnicode_InternFromString("value");
    enum_types = PyDict_New();
    enum_values = PyDict_New();
    PyObject *enum_module = PyImport_ImportModule("enum");
    if (enum_module == NULL)
        return NULL;
    enum_class = PyObject_GetAttrString(enum_module, "Enum");
    Py_DECREF(enum_module);
    sixty_four = PyLong_FromLong(64);
    mask64 = PyLong_FromUnsignedLongLong(0xffffffffffffffffULL);
    if (uuid_type == NULL || int_name == NULL || value_name == NULL || enum_types == NULL || enum_values == NULL || enum_class == NULL || sixty_four == NULL || mask64 == NULL || sha256 == NULL)
        return NULL;
    return PyModule_Create(&module);
}
