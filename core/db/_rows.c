/* Rows between Python and SQLite's stored text, in sync's bulk reads and writes.
 *
 * A sync pass moves rows by the thousand, and on SQLite every UUID and every datetime
 * of every row is converted on the way in and on the way out: a UUID as 32 hex digits,
 * an aware UTC datetime as "YYYY-MM-DD HH:MM:SS.ffffff". Done per value in Python
 * (a processor call, a property, isoformat and a slice, uuid.UUID's __init__) that was
 * the largest share of the applying process's own work after SQLite's (profiled: a
 * pull of 100k sessions spent about 0.9 s of its 9 s on the interpreter binding rows,
 * and about as much building the rows it read).
 *
 * Both functions take, per column, None (the value as it is) or (code, fallback):
 * code 1 a UUID, code 2 a UTC datetime, code 0 only the fallback. A value of exactly
 * the kind the code names, in exactly the form it expects, is converted here; any
 * other value (a subclass, another zone, text in another spelling, garbage) goes to
 * `fallback`, the Python function that gives the result (or raises the error) the
 * caller would have had without this module. None stays None for codes 1 and 2; code
 * 0's fallback takes every value, None included, as SQLAlchemy's processors do (JSON
 * binds None as the text null).
 * So the results never depend on which way ran (tests/core/db/test_rows.py).
 *
 * Built by `make install` beside core/repository/_text.c, optional the same way:
 * without a compiler core/db/rawrows.py runs the fallbacks over every value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <string.h>

#include "../repository/_iso.h"

enum { FALLBACK_ONLY = 0, KIND_UUID = 1, KIND_UTC = 2 };

static PyTypeObject *uuid_type;     /* uuid.UUID */
static PyObject *str_int;           /* "int" */
static PyObject *str_is_safe;       /* "is_safe" */
static PyObject *safe_unknown;      /* uuid.SafeUUID.unknown */

struct kind {
    int code;           /* -1: the value as it is */
    PyObject *fallback; /* borrowed from the kinds sequence (read_kinds: held) */
};

/* The kinds sequence as an array (len(names) or len(record) entries). Its fallbacks
 * are borrowed from `*held`, the sequence itself (any iterable is made a list here),
 * which the caller releases when done with the array. */
static struct kind *read_kinds(PyObject *kinds, Py_ssize_t n, PyObject **held)
{
    PyObject *seq = PySequence_Fast(kinds, "kinds must be a sequence");
    if (seq == NULL)
        return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        PyErr_SetString(PyExc_ValueError, "one kind per column");
        Py_DECREF(seq);
        return NULL;
    }
    struct kind *out = PyMem_Calloc(n ? n : 1, sizeof(struct kind));
    if (out == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (item == Py_None) {
            out[i].code = -1;
            continue;
        }
        long code;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            (code = PyLong_AsLong(PyTuple_GET_ITEM(item, 0))) < 0 || code > KIND_UTC ||
            !PyCallable_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "a kind is None or (code 0-2, fallback)");
            PyMem_Free(out);
            Py_DECREF(seq);
            return NULL;
        }
        out[i].code = (int)code;
        out[i].fallback = PyTuple_GET_ITEM(item, 1);
    }
    *held = seq;
    return out;
}

/* --- binding: Python values to what SQLite stores ------------------------------------ */

static const char HEX[] = "0123456789abcdef";

/* uuid.UUID's .hex, from its int (never negative, below 2**128). */
static PyObject *uuid_hex(PyObject *v)
{
    PyObject *number = PyObject_GetAttr(v, str_int);
    if (number == NULL)
        return NULL;
    unsigned char bytes[16];
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t got = PyLong_AsNativeBytes(number, bytes, 16,
                                          Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
    int failed = got < 0 || got > 16;
#else
    int failed = _PyLong_AsByteArray((PyLongObject *)number, bytes, 16, 0, 0) < 0;
#endif
    Py_DECREF(number);
    if (failed)
        return NULL;
    PyObject *text = PyUnicode_New(32, 127);
    if (text == NULL)
        return NULL;
    Py_UCS1 *at = PyUnicode_1BYTE_DATA(text);
    for (int i = 0; i < 16; i++) {
        at[2 * i] = HEX[bytes[i] >> 4];
        at[2 * i + 1] = HEX[bytes[i] & 15];
    }
    return text;
}

/* A UTC datetime as "YYYY-MM-DD HH:MM:SS.ffffff" (core.sync.writes._sqlite_utc). */
static PyObject *utc_text(PyObject *v)
{
    PyObject *text = PyUnicode_New(26, 127);
    if (text == NULL)
        return NULL;
    char *at = (char *)PyUnicode_1BYTE_DATA(text);
    at = put_date(at, v);
    *at++ = ' ';
    at = put_clock(at, v);
    *at++ = '.';
    put_digits(at, PyDateTime_DATE_GET_MICROSECOND(v), 6);
    return text;
}

static PyObject *bind_value(PyObject *v, const struct kind *kind)
{
    if (kind->code < 0 || (v == Py_None && kind->code != FALLBACK_ONLY))
        return Py_NewRef(v);
    if (kind->code == KIND_UUID && Py_IS_TYPE(v, uuid_type))
        return uuid_hex(v);
    if (kind->code == KIND_UTC && PyDateTime_CheckExact(v) && PyDateTime_DATE_GET_TZINFO(v) == PyDateTime_TimeZone_UTC)
        return utc_text(v);
    return PyObject_CallOneArg(kind->fallback, v);
}

static PyObject *bind_rows(PyObject *self, PyObject *args)
{
    PyObject *rows, *names, *kinds;
    if (!PyArg_ParseTuple(args, "OOO", &rows, &names, &kinds))
        return NULL;
    PyObject *row_seq = PySequence_Fast(rows, "rows must be a sequence");
    if (row_seq == NULL)
        return NULL;
    PyObject *name_seq = PySequence_Fast(names, "names must be a sequence");
    if (name_seq == NULL) {
        Py_DECREF(row_seq);
        return NULL;
    }
    Py_ssize_t width = PySequence_Fast_GET_SIZE(name_seq), n = PySequence_Fast_GET_SIZE(row_seq);
    PyObject **keys = PySequence_Fast_ITEMS(name_seq);
    PyObject *held = NULL;
    struct kind *kind = read_kinds(kinds, width, &held);
    PyObject *out = kind == NULL ? NULL : PyList_New(n);
    for (Py_ssize_t r = 0; out != NULL && r < n; r++) {
        PyObject *row = PySequence_Fast_GET_ITEM(row_seq, r);
        PyObject *params = PyTuple_New(width);
        if (params == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, r, params);
        for (Py_ssize_t c = 0; c < width; c++) {
            PyObject *value;
            if (PyDict_CheckExact(row)) {
                value = PyDict_GetItemWithError(row, keys[c]);      /* borrowed */
                if (value == NULL) {
                    if (!PyErr_Occurred())
                        PyErr_SetObject(PyExc_KeyError, keys[c]);
                    Py_CLEAR(out);
                    break;
                }
                value = bind_value(value, &kind[c]);
            } else {
                PyObject *got = PyObject_GetItem(row, keys[c]);
                value = got == NULL ? NULL : bind_value(got, &kind[c]);
                Py_XDECREF(got);
            }
            if (value == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyTuple_SET_ITEM(params, c, value);
        }
    }
    PyMem_Free(kind);
    Py_XDECREF(held);
    Py_DECREF(name_seq);
    Py_DECREF(row_seq);
    return out;
}

/* --- reading: what SQLite stores to Python values ------------------------------------ */

static int hex_digit(Py_UCS1 c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* uuid.UUID(hex) of 32 hex digits, made as UUID.__setstate__ makes one (core.db.rawrows.
 * uuid_of_int); NULL without an exception set for any other text (the fallback's). */
static PyObject *uuid_of(PyObject *v)
{
    if (!PyUnicode_CheckExact(v) || PyUnicode_GET_LENGTH(v) != 32 || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND)
        return NULL;
    const Py_UCS1 *at = PyUnicode_1BYTE_DATA(v);
    unsigned char bytes[16];
    for (int i = 0; i < 16; i++) {
        int high = hex_digit(at[2 * i]), low = hex_digit(at[2 * i + 1]);
        if (high < 0 || low < 0)
            return NULL;
        bytes[i] = (unsigned char)(high << 4 | low);
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *number = PyLong_FromUnsignedNativeBytes(bytes, 16, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    PyObject *number = _PyLong_FromByteArray(bytes, 16, 0, 0);
#endif
    if (number == NULL)
        return NULL;
    PyObject *made = uuid_type->tp_alloc(uuid_type, 0);
    if (made == NULL || PyObject_GenericSetAttr(made, str_int, number) < 0 ||
        PyObject_GenericSetAttr(made, str_is_safe, safe_unknown) < 0) {
        Py_XDECREF(made);
        Py_DECREF(number);
        return NULL;
    }
    Py_DECREF(number);
    return made;
}

static int digits(const Py_UCS1 *at, int count)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        if (at[i] < '0' || at[i] > '9')
            return -1;
        value = value * 10 + (at[i] - '0');
    }
    return value;
}

/* An aware UTC datetime from "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DD HH:MM:SS.ffffff" (space
 * or T), as fromisoformat reads it; NULL without an exception set for any other text. */
static PyObject *utc_of(PyObject *v)
{
    if (!PyUnicode_CheckExact(v) || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(v);
    if ((n != 19 && n != 26) || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' ||
        s[16] != ':' || (n == 26 && s[19] != '.'))
        return NULL;
    int year = digits(s, 4), month = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), minute = digits(s + 14, 2), second = digits(s + 17, 2);
    int micro = n == 26 ? digits(s + 20, 6) : 0;
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || micro < 0)
        return NULL;
    PyObject *made = PyDateTimeAPI->DateTime_FromDateAndTime(year, month, day, hour, minute, second, micro,
                                                            PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
    if (made == NULL)
        PyErr_Clear();      /* out of range: the fallback raises as fromisoformat does */
    return made;
}

static PyObject *typed_value(PyObject *v, const struct kind *kind)
{
    if (kind->code < 0 || (v == Py_None && kind->code != FALLBACK_ONLY))
        return Py_NewRef(v);
    PyObject *made = kind->code == KIND_UUID ? uuid_of(v) : kind->code == KIND_UTC ? utc_of(v) : NULL;
    if (made != NULL || PyErr_Occurred())
        return made;
    return PyObject_CallOneArg(kind->fallback, v);
}

static PyObject *typed_rows(PyObject *self, PyObject *args)
{
    PyObject *records, *kinds;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OnO", &records, &width, &kinds))
        return NULL;
    PyObject *seq = PySequence_Fast(records, "records must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *held = NULL;
    struct kind *kind = read_kinds(kinds, width, &held);
    PyObject *out = kind == NULL ? NULL : PyList_New(n);
    for (Py_ssize_t r = 0; out != NULL && r < n; r++) {
        PyObject *record = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, r), "a record must be a sequence");
        if (record == NULL) {
            Py_CLEAR(out);
            break;
        }
        if (PySequence_Fast_GET_SIZE(record) != width) {
            PyErr_SetString(PyExc_ValueError, "a record of another width");
            Py_DECREF(record);
            Py_CLEAR(out);
            break;
        }
        PyObject *values = PyList_New(width);
        for (Py_ssize_t c = 0; values != NULL && c < width; c++) {
            PyObject *value = typed_value(PySequence_Fast_GET_ITEM(record, c), &kind[c]);
            if (value == NULL)
                Py_CLEAR(values);
            else
                PyList_SET_ITEM(values, c, value);
        }
        Py_DECREF(record);
        if (values == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, r, values);
    }
    PyMem_Free(kind);
    Py_XDECREF(held);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"bind_rows", bind_rows, METH_VARARGS,
     "bind_rows(rows, names, kinds): a tuple per row of its values under `names`, each bound for SQLite"},
    {"typed_rows", typed_rows, METH_VARARGS,
     "typed_rows(records, width, kinds): a list per record of its `width` values, each made from SQLite's"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rows(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    PyObject *uuid_module = PyImport_ImportModule("uuid");
    if (uuid_module == NULL)
        return NULL;
    PyObject *found = PyObject_GetAttrString(uuid_module, "UUID");
    PyObject *safe = PyObject_GetAttrString(uuid_module, "SafeUUID");
    Py_DECREF(uuid_module);
    if (found == NULL || safe == NULL || !PyType_Check(found)) {
        Py_XDECREF(found);
        Py_XDECREF(safe);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "uuid.UUID is not a type");
        return NULL;
    }
    uuid_type = (PyTypeObject *)found;      /* kept for the module's life */
    safe_unknown = PyObject_GetAttrString(safe, "unknown");
    Py_DECREF(safe);
    str_int = PyUnicode_InternFromString("int");
    str_is_safe = PyUnicode_InternFromString("is_safe");
    if (safe_unknown == NULL || str_int == NULL || str_is_safe == NULL)
        return NULL;
    return PyModule_Create(&module);
}
