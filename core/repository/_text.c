/* Text printed a column at a time, the bulk readers' inner loops: dates and times as ISO
 * text (core/repository/records.py, _COLUMN_WISE), and NDJSON lines from columns
 * (core/export/jsondoc.py, NdjsonDocument.write_columns; see ndjson_lines below).
 *
 * A bulk read prints two or three times per row; `v.isoformat() + "+00:00"` in a
 * comprehension costs about 1.5 us a value on these machines (a method call, a string
 * and a concatenation), which was 8% of a masked export of 100k clients. Here a value
 * costs a few stores. The text is exactly what Python prints: any value that is not a
 * plain naive datetime (times) or a plain date (dates) -- an aware or subclassed one --
 * goes through its own isoformat(), so the result never depends on which way ran.
 *
 * Built by `make install` beside core/crypto/_gcm.c, optional the same way: without a
 * compiler records.py prints through the comprehension (same text, slower).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <string.h>

#include "_buffer.h"
#include "_iso.h"

/* How iso_times prints: the separator (one character) and the suffix after the time. */
struct time_form {
    PyObject *sep_obj;
    char sep;
    const char *suffix;
    Py_ssize_t suffix_len;
};

/* Prints one value (never None) as a new str, or NULL with an exception set. */
typedef PyObject *(*printer)(PyObject *v, const void *form);

/* The column loop both functions share: None stays None, the rest goes through `print`. */
static PyObject *print_column(PyObject *values, printer print, const void *form, const char *not_sequence)
{
    PyObject *seq = PySequence_Fast(values, not_sequence);
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = items[i];
        PyObject *text = v == Py_None ? Py_NewRef(Py_None) : print(v, form);
        if (text == NULL) {
            Py_DECREF(out);
            Py_DECREF(seq);
            return NULL;
        }
        PyList_SET_ITEM(out, i, text);
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *print_time(PyObject *v, const void *arg)
{
    const struct time_form *form = arg;
    if (!PyDateTime_CheckExact(v) || PyDateTime_DATE_GET_TZINFO(v) != Py_None) {
        /* Anything else prints as Python prints it (and fails as Python fails). */
        PyObject *iso = PyObject_CallMethod(v, "isoformat", "O", form->sep_obj);
        if (iso == NULL)
            return NULL;
        PyObject *tail = PyUnicode_FromStringAndSize(form->suffix, form->suffix_len);
        PyObject *text = tail == NULL ? NULL : PyUnicode_Concat(iso, tail);
        Py_XDECREF(tail);
        Py_DECREF(iso);
        return text;
    }
    char buf[80];
    char *at = put_date(buf, v);
    *at++ = form->sep;
    at = put_clock(at, v);
    int us = PyDateTime_DATE_GET_MICROSECOND(v);
    if (us) {
        *at++ = '.';
        at = put_digits(at, us, 6);
    }
    memcpy(at, form->suffix, (size_t)form->suffix_len);
    return PyUnicode_FromStringAndSize(buf, (at - buf) + form->suffix_len);
}

static PyObject *print_date(PyObject *v, const void *Py_UNUSED(form))
{
    if (!PyDate_CheckExact(v))
        return PyObject_CallMethod(v, "isoformat", NULL);
    char buf[16];
    return PyUnicode_FromStringAndSize(buf, put_date(buf, v) - buf);
}

/* iso_times(values, sep, suffix) -> list: per value, None for None, else
 * value.isoformat(sep) + suffix. `sep` is one character, as isoformat requires. */
static PyObject *iso_times(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *values;
    struct time_form form;
    if (!PyArg_ParseTuple(args, "OUs#", &values, &form.sep_obj, &form.suffix, &form.suffix_len))
        return NULL;
    if (PyUnicode_GET_LENGTH(form.sep_obj) != 1 || !PyUnicode_IS_ASCII(form.sep_obj)) {
        PyErr_SetString(PyExc_ValueError, "iso_times: sep must be one ASCII character");
        return NULL;
    }
    if (form.suffix_len > 32) {
        PyErr_SetString(PyExc_ValueError, "iso_times: suffix longer than 32 bytes");
        return NULL;
    }
    form.sep = (char)PyUnicode_READ_CHAR(form.sep_obj, 0);
    return print_column(values, print_time, &form, "iso_times: values must be a sequence");
}

/* iso_dates(values) -> list: per value, None for None, else value.isoformat(). */
static PyObject *iso_dates(PyObject *Py_UNUSED(self), PyObject *values)
{
    return print_column(values, print_date, NULL, "iso_dates: values must be a sequence");
}

/* --- NDJSON lines from columns ------------------------------------------------------
 *
 * An NDJSON export made a dict per row and had orjson write it: with the dicts, about
 * 2 us a client row, a sixth of the export's own time. Here a row is written straight
 * from the columns, byte for byte as json.dumps(row, ensure_ascii=False,
 * separators=(",", ":")) with the line breaks escaped (the export's format). Only
 * None, booleans, 64-bit integers and text that UTF-8 holds are written here; any
 * other value makes the call give None, and the caller writes the batch as before. */

/* A string's UTF-8 as json.dumps(ensure_ascii=False) writes it between its quotes, with
 * U+0085, U+2028 and U+2029 escaped too (core/export/jsondoc.py, _BREAKS). */
static int put_json_text(Out *out, const unsigned char *s, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (out_reserve(out, (size_t)n * 6 + 2) < 0)   /* the longest escape is six bytes a byte */
        return -1;
    char *at = out->data + out->length;
    *at++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0xC2 && c != 0xE2) {
            *at++ = (char)c;
            continue;
        }
        if (c == '"' || c == '\\') {
            *at++ = '\\';
            *at++ = (char)c;
        } else if (c < 0x20) {
            *at++ = '\\';
            switch (c) {
            case '\n': *at++ = 'n'; break;
            case '\r': *at++ = 'r'; break;
            case '\t': *at++ = 't'; break;
            case '\b': *at++ = 'b'; break;
            case '\f': *at++ = 'f'; break;
            default:
                memcpy(at, "u00", 3);
                at += 3;
                *at++ = hex[c >> 4];
                *at++ = hex[c & 15];
            }
        } else if (c == 0xC2 && i + 1 < n && s[i + 1] == 0x85) {
            memcpy(at, "\\u0085", 6);
            at += 6;
            i += 1;
        } else if (c == 0xE2 && i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
            memcpy(at, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            at += 6;
            i += 2;
        } else {
            *at++ = (char)c;
        }
    }
    *at++ = '"';
    out->length = (size_t)(at - out->data);
    return 0;
}

/* One value as json.dumps writes it: 1 written, 0 a value of another kind (the caller
 * falls back), -1 an error. */
static int put_json_value(Out *out, PyObject *v)
{
    if (v == Py_None)
        return out_put(out, "null", 4) < 0 ? -1 : 1;
    if (v == Py_True)
        return out_put(out, "true", 4) < 0 ? -1 : 1;
    if (v == Py_False)
        return out_put(out, "false", 5) < 0 ? -1 : 1;
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(v, &n);
        if (utf8 == NULL) {             /* a lone surrogate: no UTF-8 holds it */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        return put_json_text(out, (const unsigned char *)utf8, n) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow)
            return 0;
        if (number == -1 && PyErr_Occurred())
            return -1;
        char digits[24];
        int written = snprintf(digits, sizeof digits, "%lld", number);
        return out_put(out, digits, (size_t)written) < 0 ? -1 : 1;
    }
    return 0;
}

/* ndjson_lines(keys, columns) -> bytes | None: columns a list of lists or tuples, one per
 * key, of one length; row i as one line, `{` then per column c
 * keys[c] (the key as JSON text and a colon, bytes) and columns[c][i] as JSON, then
 * `}` and a newline; None when any value is not None, bool, int (64-bit), or str that
 * UTF-8 holds, for the caller to write those rows its own way. */
static PyObject *ndjson_lines(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *keys, *columns;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &keys, &PyList_Type, &columns))
        return NULL;
    Py_ssize_t width = PyList_GET_SIZE(columns);
    if (PyList_GET_SIZE(keys) != width || width == 0) {
        PyErr_SetString(PyExc_ValueError, "ndjson_lines: one key per column, at least one column");
        return NULL;
    }
    Py_ssize_t rows = -1;
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *column = PyList_GET_ITEM(columns, c), *key = PyList_GET_ITEM(keys, c);
        if (!(PyList_Check(column) || PyTuple_Check(column)) || !PyBytes_Check(key) ||
                (rows >= 0 && PySequence_Fast_GET_SIZE(column) != rows)) {
            PyErr_SetString(PyExc_ValueError, "ndjson_lines: columns are lists or tuples of one length, keys bytes");
            return NULL;
        }
        rows = PySequence_Fast_GET_SIZE(column);
    }
    Out out;
    out_start(&out, NULL, 0);
    for (Py_ssize_t i = 0; i < rows; i++) {
        if (out_put(&out, "{", 1) < 0)
            goto failed;
        for (Py_ssize_t c = 0; c < width; c++) {
            PyObject *key = PyList_GET_ITEM(keys, c);
            if ((c > 0 && out_put(&out, ",", 1) < 0) ||
                    out_put(&out, PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key)) < 0)
                goto failed;
            int put = put_json_value(&out, PySequence_Fast_GET_ITEM(PyList_GET_ITEM(columns, c), i));
            if (put < 0)
                goto failed;
            if (put == 0) {
                out_free(&out);
                Py_RETURN_NONE;
            }
        }
        if (out_put(&out, "}\n", 2) < 0)
            goto failed;
    }
    PyObject *result = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.length);
    out_free(&out);
    return result;
failed:
    out_free(&out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"iso_times", iso_times, METH_VARARGS,
     "iso_times(values, sep, suffix): [None if v is None else v.isoformat(sep) + suffix for v in values]"},
    {"iso_dates", iso_dates, METH_O, "iso_dates(values): [None if v is None else v.isoformat() for v in values]"},
    {"ndjson_lines", ndjson_lines, METH_VARARGS,
     "ndjson_lines(keys, columns): the rows as JSON lines from columns, or None for a value of another kind"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_text", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__text(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
