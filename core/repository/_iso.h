/* ISO dates and times spelled digit by digit, shared by the C extensions of
 * core/repository (_text.c prints bulk reads' dates and times, _canon.c spells them
 * into the canonical text it hashes). snprintf parsing its format per value cost more
 * than the rest. The includer includes Python.h and datetime.h first. */
#ifndef STRONGROOM_ISO_H
#define STRONGROOM_ISO_H

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

/* "HH:MM:SS" of a datetime (the microseconds are the caller's: isoformat leaves out
 * zero ones, the canonical text never does). */
static inline char *put_clock(char *at, PyObject *v)
{
    at = put_digits(at, PyDateTime_DATE_GET_HOUR(v), 2);
    *at++ = ':';
    at = put_digits(at, PyDateTime_DATE_GET_MINUTE(v), 2);
    *at++ = ':';
    return put_digits(at, PyDateTime_DATE_GET_SECOND(v), 2);
}

#endif
