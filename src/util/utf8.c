/*
 * utf8.c - strict UTF-8 validation, following Table 3-7 of the Unicode
 * Standard ("well-formed UTF-8 byte sequences"): no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
 * sequence. U+0000 is valid UTF-8; callers that forbid NUL check for it.
 */
#include <string.h>

#include "s3mem/util.h"

/* The length of the sequence that lead byte lead starts (0 when lead cannot
 * start one) and the range its second byte must fall in; the range is what
 * excludes overlongs, surrogates and code points above U+10FFFF. */
static unsigned sequence_shape(unsigned char lead, unsigned char *second_min,
                               unsigned char *second_max)
{
    *second_min = 0x80;
    *second_max = 0xbf;
    if (lead < 0x80)
        return 1;
    if (lead < 0xc2)
        return 0;
    if (lead < 0xe0)
        return 2;
    if (lead < 0xf0) {
        if (lead == 0xe0)
            *second_min = 0xa0;
        else if (lead == 0xed)
            *second_max = 0x9f;
        return 3;
    }
    if (lead < 0xf5) {
        if (lead == 0xf0)
            *second_min = 0x90;
        else if (lead == 0xf4)
            *second_max = 0x8f;
        return 4;
    }
    return 0;
}

/* The length of the well-formed sequence at bytes[0..left), or 0. */
static unsigned sequence_length(const unsigned char *bytes, size_t left)
{
    unsigned char second_min, second_max;
    unsigned length = sequence_shape(bytes[0], &second_min, &second_max);

    if (length == 0 || length > left)
        return 0;
    if (length > 1 && (bytes[1] < second_min || bytes[1] > second_max))
        return 0;
    for (unsigned k = 2; k < length; k++) {
        if (bytes[k] < 0x80 || bytes[k] > 0xbf)
            return 0;
    }
    return length;
}

bool s3m_utf8_valid(const char *text, size_t len)
{
    const unsigned char *bytes = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint64_t word;
        /* ASCII runs eight bytes at a time */
        while (len - i >= 8) {
            memcpy(&word, bytes + i, 8);
            if (word & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i == len)
            break;
        unsigned length = sequence_length(bytes + i, len - i);
        if (length == 0)
            return false;
        i += length;
    }
    return true;
}

char *s3m_utf8_sanitize(const char *text)
{
    size_t len = strlen(text);
    char *out = s3m_malloc(len * 3 + 1);
    if (!out)
        return NULL;
    const unsigned char *bytes = (const unsigned char *)text;
    size_t used = 0;
    for (size_t i = 0; i < len;) {
        unsigned length = sequence_length(bytes + i, len - i);
        if (length == 0) {
            memcpy(out + used, "\xef\xbf\xbd", 3); /* U+FFFD */
            used += 3;
            i++;
        } else {
            memcpy(out + used, text + i, length);
            used += length;
            i += length;
        }
    }
    out[used] = '\0';
    return out;
}
