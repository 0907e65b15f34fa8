/*
 * time.c - the clock, and ISO 8601 UTC timestamps with millisecond output.
 *
 * Design note: conversion between days since 1970-01-01 and a proleptic
 * Gregorian date is pure integer arithmetic on 400-year eras (146097 days
 * each), with floor division so negative times work. Nothing here calls
 * gmtime, timegm or mktime, so results never depend on TZ or the locale,
 * and every int64 nanosecond count (years 1677..2262) can be formatted.
 */
#include "s3mem/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NS_PER_SECOND 1000000000LL
#define SECONDS_PER_DAY 86400LL
#define DAYS_PER_ERA 146097LL
/* Days from 0000-03-01, the start of era 0, to 1970-01-01. */
#define EPOCH_DAY_IN_ERAS 719468LL

struct civil_date {
    int64_t year;
    unsigned month;           /* 1..12 */
    unsigned day;             /* 1..31 */
};

int64_t s3m_time_now_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * NS_PER_SECOND + now.tv_nsec;
}

/* Floor of a / b for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return a % b < 0 ? q - 1 : q;
}

/* Days since 1970-01-01 of a valid date. Years are counted from March so
 * that the leap day is the last day of its year. */
static int64_t days_from_civil(struct civil_date date)
{
    int64_t year = date.year - (date.month <= 2);
    int64_t era = floor_div(year, 400);
    int64_t year_of_era = year - era * 400;
    int64_t month_from_march = (date.month + 9) % 12;
    int64_t day_of_year = (153 * month_from_march + 2) / 5 + date.day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 -
                         year_of_era / 100 + day_of_year;

    return era * DAYS_PER_ERA + day_of_era - EPOCH_DAY_IN_ERAS;
}

/* The date of day number days since 1970-01-01; the inverse of
 * days_from_civil. */
static struct civil_date civil_from_days(int64_t days)
{
    int64_t shifted = days + EPOCH_DAY_IN_ERAS;
    int64_t era = floor_div(shifted, DAYS_PER_ERA);
    int64_t day_of_era = shifted - era * DAYS_PER_ERA;
    int64_t year_of_era = (day_of_era - day_of_era / 1460 +
                           day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 -
                                        year_of_era / 100);
    int64_t month_from_march = (5 * day_of_year + 2) / 153;
    struct civil_date date;

    date.day = (unsigned)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
    date.month = (unsigned)(month_from_march < 10 ? month_from_march + 3
                                                  : month_from_march - 9);
    date.year = year_of_era + era * 400 + (date.month <= 2);
    return date;
}

/* Writes value's last count decimal digits at out. */
static void put_digits(char *out, unsigned value, unsigned count)
{
    while (count--) {
        out[count] = (char)('0' + value % 10);
        value /= 10;
    }
}

void s3m_time_format_iso(int64_t ns, char out[32])
{
    int64_t ms = floor_div(ns, 1000000);
    int64_t seconds = floor_div(ms, 1000);
    int64_t days = floor_div(seconds, SECONDS_PER_DAY);
    unsigned second_of_day = (unsigned)(seconds - days * SECONDS_PER_DAY);
    unsigned millis = (unsigned)(ms - seconds * 1000);
    struct civil_date date = civil_from_days(days);

    if (date.year < 0 || date.year > 9999) {
        snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                 (long long)date.year, date.month, date.day,
                 second_of_day / 3600, second_of_day / 60 % 60,
                 second_of_day % 60, millis);
        return;
    }
    /* the common case by hand: save writes one per object */
    memcpy(out, "0000-00-00T00:00:00.000Z", 25);
    put_digits(out, (unsigned)date.year, 4);
    put_digits(out + 5, date.month, 2);
    put_digits(out + 8, date.day, 2);
    put_digits(out + 11, second_of_day / 3600, 2);
    put_digits(out + 14, second_of_day / 60 % 60, 2);
    put_digits(out + 17, second_of_day % 60, 2);
    put_digits(out + 20, millis, 3);
}

/* Reads exactly count decimal digits at text into *value. Returns false,
 * leaving *value unspecified, when one of them is not a digit. */
static bool parse_digits(const char *text, unsigned count, unsigned *value)
{
    *value = 0;
    for (unsigned i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        *value = *value * 10 + (unsigned)(text[i] - '0');
    }
    return true;
}

static unsigned days_in_month(int64_t year, unsigned month)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30,
                                      31, 31, 30, 31, 30, 31};
    bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);

    return month == 2 && leap ? 29 : days[month - 1];
}

/* Parses "YYYY-MM-DDTHH:MM:SS" into seconds since the epoch. Returns false
 * on a bad character or a field out of range. */
static bool parse_date_time(const char *text, int64_t *seconds)
{
    unsigned year, month, day, hour, minute, second;
    struct civil_date date;

    if (!parse_digits(text, 4, &year) || text[4] != '-' ||
        !parse_digits(text + 5, 2, &month) || text[7] != '-' ||
        !parse_digits(text + 8, 2, &day) || text[10] != 'T' ||
        !parse_digits(text + 11, 2, &hour) || text[13] != ':' ||
        !parse_digits(text + 14, 2, &minute) || text[16] != ':' ||
        !parse_digits(text + 17, 2, &second))
        return false;
    if (month < 1 || month > 12 || day < 1 ||
        day > days_in_month(year, month) || hour > 23 || minute > 59 ||
        second > 59)
        return false;
    date = (struct civil_date){.year = year, .month = month, .day = day};
    *seconds = days_from_civil(date) * SECONDS_PER_DAY + hour * 3600 +
               minute * 60 + second;
    return true;
}

/* Parses "[.digits]Z" and the end of the string into nanoseconds. Digits
 * beyond the ninth are checked but ignored. Returns false on bad syntax. */
static bool parse_fraction(const char *text, int64_t *fraction_ns)
{
    int64_t scale = NS_PER_SECOND;
    size_t i = 0;

    *fraction_ns = 0;
    if (text[0] == '.') {
        for (i = 1; text[i] >= '0' && text[i] <= '9'; i++) {
            scale /= 10;
            *fraction_ns += (text[i] - '0') * scale;
        }
        if (i == 1)
            return false;
    }
    return text[i] == 'Z' && text[i + 1] == '\0';
}

/* seconds * 10^9 + fraction_ns, or false when that overflows int64. For
 * negative seconds the fraction is folded in first, so the most negative
 * representable time is reachable. */
static bool combine_ns(int64_t seconds, int64_t fraction_ns, int64_t *ns)
{
    if (seconds < 0) {
        seconds += 1;
        fraction_ns -= NS_PER_SECOND;
    }
    return !__builtin_mul_overflow(seconds, NS_PER_SECOND, ns) &&
           !__builtin_add_overflow(*ns, fraction_ns, ns);
}

/* Leaves *ns untouched on failure, including times outside int64 range. */
int s3m_time_parse_iso(const char *text, int64_t *ns)
{
    int64_t seconds, fraction_ns, result;

    if (!parse_date_time(text, &seconds) ||
        !parse_fraction(text + 19, &fraction_ns) ||
        !combine_ns(seconds, fraction_ns, &result))
        return -EINVAL;
    *ns = result;
    return 0;
}
