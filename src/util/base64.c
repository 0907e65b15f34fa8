/*
 * base64.c - RFC 4648 base64 with the standard alphabet.
 *
 * Decoding accepts text with or without its '=' padding. When padding is
 * present it must complete the last quantum (the length is then a multiple
 * of 4) and nothing may follow it. Non-zero bits left over in the last
 * character are ignored, as RFC 4648 section 3.5 allows.
 */
#include "s3mem/util.h"

#include <errno.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t s3m_base64_encoded_length(size_t len)
{
    return (len / 3 + (len % 3 != 0)) * 4;
}

void s3m_base64_encode(const void *data, size_t len, char *out)
{
    const unsigned char *in = data;

    for (; len >= 3; in += 3, len -= 3, out += 4) {
        uint32_t group = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];

        out[0] = base64_alphabet[group >> 18];
        out[1] = base64_alphabet[(group >> 12) & 63];
        out[2] = base64_alphabet[(group >> 6) & 63];
        out[3] = base64_alphabet[group & 63];
    }
    if (len) {
        uint32_t group = (uint32_t)in[0] << 16 |
                         (len == 2 ? (uint32_t)in[1] << 8 : 0);

        out[0] = base64_alphabet[group >> 18];
        out[1] = base64_alphabet[(group >> 12) & 63];
        out[2] = len == 2 ? base64_alphabet[(group >> 6) & 63] : '=';
        out[3] = '=';
        out += 4;
    }
    *out = '\0';
}

/* Returns the 6-bit value of c, or -1 when c is not in the alphabet. */
static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Returns text_len without its padding (at most two '='), or (size_t)-1
 * when padding is present but the padded length is not a multiple of 4. A
 * third '=' stays in the text and fails as a character. */
static size_t base64_unpadded_length(const char *text, size_t text_len)
{
    size_t len = text_len;

    while (len > 0 && text_len - len < 2 && text[len - 1] == '=')
        len--;
    if (len != text_len && text_len % 4 != 0)
        return (size_t)-1;
    return len;
}

/* True when the len unpadded characters of text can be decoded. */
static bool base64_valid(const char *text, size_t len)
{
    if (len == (size_t)-1 || len % 4 == 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (base64_value(text[i]) < 0)
            return false;
    }
    return true;
}

/* Validates all of text before writing, so a failure leaves out and
 * out_len untouched. */
int s3m_base64_decode(const char *text, size_t text_len, unsigned char *out,
                      size_t *out_len)
{
    size_t len = base64_unpadded_length(text, text_len);
    size_t written = 0;
    uint32_t group = 0;

    if (!base64_valid(text, len))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        group = group << 6 | (uint32_t)base64_value(text[i]);
        if (i % 4 == 3) {
            out[written++] = (unsigned char)(group >> 16);
            out[written++] = (unsigned char)(group >> 8);
            out[written++] = (unsigned char)group;
            group = 0;
        }
    }
    if (len % 4 >= 2)
        out[written++] = (unsigned char)(group >> (len % 4 == 2 ? 4 : 10));
    if (len % 4 == 3)
        out[written++] = (unsigned char)(group >> 2);
    *out_len = written;
    return 0;
}
