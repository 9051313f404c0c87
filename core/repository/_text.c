/* Dates and times printed as ISO text a column at a time: the inner loop of the bulk
 * readers' time columns (core/repository/records.py, _COLUMN_WISE).
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

/* Digits written by hand: snprintf parsing its format per value cost more than the rest. */
static inline char *put_digits(char *at, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        at[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return at + width;
}

/* "YYYY-MM-DD" of a date or datetime (years 1..9999, as datetime allows). */
static inline char *put_date(char *at, PyObject *v)
{
    at = put_digits(at, PyDateTime_GET_YEAR(v), 4);
    *at++ = '-';
    at = put_digits(at, PyDateTime_GET_MONTH(v), 2);
    *at++ = '-';
    return put_digits(at, PyDateTime_GET_DAY(v), 2);
}

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
    at = put_digits(at, PyDateTime_DATE_GET_HOUR(v), 2);
    *at++ = ':';
    at = put_digits(at, PyDateTime_DATE_GET_MINUTE(v), 2);
    *at++ = ':';
    at = put_digits(at, PyDateTime_DATE_GET_SECOND(v), 2);
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

static PyMethodDef methods[] = {
    {"iso_times", iso_times, METH_VARARGS,
     "iso_times(values, sep, suffix): [None if v is None else v.isoformat(sep) + suffix for v in values]"},
    {"iso_dates", iso_dates, METH_O, "iso_dates(values): [None if v is None else v.isoformat() for v in values]"},
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
