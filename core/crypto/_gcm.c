/* AES-256-GCM opening of a batch of small sealed values in one call (core.crypto.bulk).

Why this exists: a bulk read opens one field per row and column (100k clients x 10
fields at scale 1). Through the `cryptography` package each open is one Python call
(about 1 us) and each of the 100k client keys one AESGCM object (about 3 us): well over
a second of a two-second export. Here the loop runs in C over OpenSSL's EVP interface,
the same AES-256-GCM with the same checks; a row's key is scheduled once for all its
columns, keys are only bytes for the length of the batch, and the opening itself runs
without the GIL, so the thread fetching the next batch goes on meanwhile.

open_rows(keys, columns, prefixes, tails, heads, text) -> list[list] | None

  keys, tails and heads: one bytes per row; columns: one sequence per column, of one
  bytes or None per row; prefixes: one bytes per column. Sequences are lists or tuples.
  Each value columns[c][i] that is not None must start with heads[i] (b"" for none) and
  then hold nonce (12) | ciphertext | tag (16); it is opened with keys[i] (32 bytes) and
  the associated data prefixes[c] + tails[i]. The result holds, per column, the
  plaintexts (None where the value was None): str (strict UTF-8) when `text`, else bytes.

  None when any value is not of that usual shape (not bytes, too short, another head,
  a key that is not 32 bytes), before anything is opened: the caller then goes value by
  value and names the one at fault. A value that fails authentication raises
  cryptography's InvalidTag, as AESGCM.decrypt does; a plaintext that is not UTF-8
  raises UnicodeDecodeError, as bytes.decode does. The plaintexts' buffer is wiped
  before it is freed.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define NONCE 12
#define TAG 16
#define KEY 32

static PyObject *invalid_tag; /* cryptography.exceptions.InvalidTag */

/* One value to open: where it is sealed, and where its plaintext goes. */
typedef struct {
    const unsigned char *sealed; /* nonce | ciphertext | tag, past the head */
    int length;                  /* of the ciphertext alone */
    size_t at;                   /* offset of the plaintext in the arena */
} Cell;

/* What the opening needs, read from Python objects while the GIL is held. */
typedef struct {
    Py_ssize_t rows, columns;
    const unsigned char **keys;  /* per row */
    const unsigned char **tails; /* per row */
    Py_ssize_t *tail_lengths;
    const unsigned char **prefixes; /* per column */
    Py_ssize_t *prefix_lengths;
    Cell *cells;                 /* row-major; sealed NULL for a None value */
    unsigned char *arena;
    size_t arena_size;
} Batch;

static void batch_free(Batch *b)
{
    if (b->arena != NULL) {
        OPENSSL_cleanse(b->arena, b->arena_size);
        PyMem_RawFree(b->arena);
    }
    PyMem_Free(b->keys);
    PyMem_Free(b->tails);
    PyMem_Free(b->tail_lengths);
    PyMem_Free(b->prefixes);
    PyMem_Free(b->prefix_lengths);
    PyMem_Free(b->cells);
}

/* Opens every cell of `b` with the GIL released; 0, or -1 when one fails. */
static int open_all(const Batch *b)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return -2;
    }
    int failed = 0;
    const unsigned char *scheduled = NULL;
    for (Py_ssize_t i = 0; i < b->rows && !failed; i++) {
        for (Py_ssize_t c = 0; c < b->columns; c++) {
            const Cell *cell = &b->cells[i * b->columns + c];
            if (cell->sealed == NULL)
                continue;
            /* The key schedule only when the key changes (a row's columns, a client's rows). */
            const unsigned char *key = (scheduled != NULL && memcmp(scheduled, b->keys[i], KEY) == 0) ? NULL : b->keys[i];
            if (key != NULL)
                scheduled = key;
            int length = 0, last = 0;
            unsigned char *out = b->arena + cell->at;
            if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, cell->sealed) != 1 ||
                (b->prefix_lengths[c] > 0 &&
                 EVP_DecryptUpdate(ctx, NULL, &length, b->prefixes[c], (int)b->prefix_lengths[c]) != 1) ||
                (b->tail_lengths[i] > 0 &&
                 EVP_DecryptUpdate(ctx, NULL, &length, b->tails[i], (int)b->tail_lengths[i]) != 1) ||
                EVP_DecryptUpdate(ctx, out, &length, cell->sealed + NONCE, cell->length) != 1 ||
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG,
                                    (void *)(cell->sealed + NONCE + cell->length)) != 1 ||
                EVP_DecryptFinal_ex(ctx, out + length, &last) != 1) {
                failed = 1;
                break;
            }
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    return failed ? -1 : 0;
}

static int small(Py_ssize_t n)
{
    return n >= 0 && n <= INT_MAX / 2;
}

static PyObject *open_rows(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *keys_in, *columns_in, *prefixes_in, *tails_in, *heads_in;
    int text;
    if (!PyArg_ParseTuple(args, "OOOOOp", &keys_in, &columns_in, &prefixes_in, &tails_in, &heads_in, &text))
        return NULL;
    /* Tuples: they hold every value alive and unchanged while the GIL is released. */
    PyObject *keys = NULL, *given = NULL, *columns = NULL, *prefixes = NULL, *tails = NULL, *heads = NULL;
    PyObject *out = NULL;
    size_t total = 0;
    int status = 0;
    Batch b;
    memset(&b, 0, sizeof b);
    if ((keys = PySequence_Tuple(keys_in)) == NULL || (given = PySequence_Tuple(columns_in)) == NULL ||
        (prefixes = PySequence_Tuple(prefixes_in)) == NULL || (tails = PySequence_Tuple(tails_in)) == NULL ||
        (heads = PySequence_Tuple(heads_in)) == NULL)
        goto done;
    b.rows = PyTuple_GET_SIZE(keys);
    b.columns = PyTuple_GET_SIZE(given);
    if ((columns = PyTuple_New(b.columns)) == NULL)
        goto done;
    if (PyTuple_GET_SIZE(tails) != b.rows || PyTuple_GET_SIZE(heads) != b.rows ||
        PyTuple_GET_SIZE(prefixes) != b.columns) {
        PyErr_SetString(PyExc_ValueError, "open_rows: keys, tails, heads and columns differ in length");
        goto done;
    }
    for (Py_ssize_t c = 0; c < b.columns; c++) {
        PyObject *column = PySequence_Tuple(PyTuple_GET_ITEM(given, c));
        if (column == NULL)
            goto done;
        PyTuple_SET_ITEM(columns, c, column);
        if (PyTuple_GET_SIZE(column) != b.rows) {
            PyErr_SetString(PyExc_ValueError, "open_rows: keys, tails, heads and columns differ in length");
            goto done;
        }
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, c);
        if (!PyBytes_CheckExact(prefix) || !small(PyBytes_GET_SIZE(prefix))) {
            PyErr_SetString(PyExc_TypeError, "open_rows: each prefix must be bytes");
            goto done;
        }
    }
    if ((size_t)b.rows > PY_SSIZE_T_MAX / sizeof(Cell) / (b.columns > 0 ? (size_t)b.columns : 1)) {
        PyErr_NoMemory();
        goto done;
    }
    b.keys = PyMem_Calloc(b.rows + 1, sizeof *b.keys);
    b.tails = PyMem_Calloc(b.rows + 1, sizeof *b.tails);
    b.tail_lengths = PyMem_Calloc(b.rows + 1, sizeof *b.tail_lengths);
    b.prefixes = PyMem_Calloc(b.columns + 1, sizeof *b.prefixes);
    b.prefix_lengths = PyMem_Calloc(b.columns + 1, sizeof *b.prefix_lengths);
    b.cells = PyMem_Calloc(b.rows * b.columns + 1, sizeof *b.cells);
    if (b.keys == NULL || b.tails == NULL || b.tail_lengths == NULL || b.prefixes == NULL ||
        b.prefix_lengths == NULL || b.cells == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < b.columns; c++) {
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, c);
        b.prefixes[c] = (const unsigned char *)PyBytes_AS_STRING(prefix);
        b.prefix_lengths[c] = PyBytes_GET_SIZE(prefix);
    }
    /* The usual shape, for every value: None before anything is opened. */
    for (Py_ssize_t i = 0; i < b.rows; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i), *tail = PyTuple_GET_ITEM(tails, i);
        PyObject *head = PyTuple_GET_ITEM(heads, i);
        if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != KEY || !PyBytes_CheckExact(tail) ||
            !small(PyBytes_GET_SIZE(tail)) || !PyBytes_CheckExact(head))
            goto unusual;
        b.keys[i] = (const unsigned char *)PyBytes_AS_STRING(key);
        b.tails[i] = (const unsigned char *)PyBytes_AS_STRING(tail);
        b.tail_lengths[i] = PyBytes_GET_SIZE(tail);
        Py_ssize_t head_length = PyBytes_GET_SIZE(head);
        for (Py_ssize_t c = 0; c < b.columns; c++) {
            PyObject *blob = PyTuple_GET_ITEM(PyTuple_GET_ITEM(columns, c), i);
            if (blob == Py_None)
                continue;
            if (!PyBytes_CheckExact(blob) || PyBytes_GET_SIZE(blob) < head_length + NONCE + TAG ||
                memcmp(PyBytes_AS_STRING(blob), PyBytes_AS_STRING(head), head_length) != 0)
                goto unusual;
            Py_ssize_t length = PyBytes_GET_SIZE(blob) - head_length - NONCE - TAG;
            if (!small(length)) {
                PyErr_SetString(PyExc_OverflowError, "open_rows: a value is too large");
                goto done;
            }
            Cell *cell = &b.cells[i * b.columns + c];
            cell->sealed = (const unsigned char *)PyBytes_AS_STRING(blob) + head_length;
            cell->length = (int)length;
            cell->at = total;
            total += (size_t)length + 16; /* room for what a final block may write */
        }
    }
    b.arena_size = total + 16;
    b.arena = PyMem_RawMalloc(b.arena_size);
    if (b.arena == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    status = open_all(&b);
    Py_END_ALLOW_THREADS
    if (status == -2) {
        PyErr_SetString(PyExc_RuntimeError, "open_rows: OpenSSL could not set up AES-256-GCM");
        goto done;
    }
    if (status == -1) {
        PyErr_SetNone(invalid_tag);
        goto done;
    }
    out = PyList_New(b.columns);
    if (out == NULL)
        goto done;
    for (Py_ssize_t c = 0; c < b.columns; c++) {
        PyObject *values = PyList_New(b.rows);
        if (values == NULL)
            goto fail;
        PyList_SET_ITEM(out, c, values);
        for (Py_ssize_t i = 0; i < b.rows; i++) {
            const Cell *cell = &b.cells[i * b.columns + c];
            PyObject *value;
            if (cell->sealed == NULL) {
                value = Py_None;
                Py_INCREF(value);
            } else {
                const char *plain = (const char *)b.arena + cell->at;
                value = text ? PyUnicode_DecodeUTF8(plain, cell->length, "strict")
                             : PyBytes_FromStringAndSize(plain, cell->length);
                if (value == NULL)
                    goto fail;
            }
            PyList_SET_ITEM(values, i, value);
        }
    }
    goto done;
unusual:
    out = Py_None;
    Py_INCREF(out);
    goto done;
fail:
    Py_CLEAR(out);
done:
    batch_free(&b);
    Py_XDECREF(keys);
    Py_XDECREF(given);
    Py_XDECREF(columns);
    Py_XDECREF(prefixes);
    Py_XDECREF(tails);
    Py_XDECREF(heads);
    return out;
}

static PyMethodDef methods[] = {
    {"open_rows", open_rows, METH_VARARGS,
     "open_rows(keys, columns, prefixes, tails, heads, text) -> list[list] | None: AES-256-GCM "
     "opening of a batch of sealed values (see core/crypto/_gcm.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gcm", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__gcm(void)
{
    PyObject *exceptions = PyImport_ImportModule("cryptography.exceptions");
    if (exceptions == NULL)
        return NULL;
    invalid_tag = PyObject_GetAttrString(exceptions, "InvalidTag");
    Py_DECREF(exceptions);
    if (invalid_tag == NULL)
        return NULL;
    return PyModule_Create(&module);
}
