/*
 * base64.c - RFC 4648 base64 with the standard alphabet.
 *
 * Decoding accepts text with or without its '=' padding. When padding is
 * present it must complete the last quantum (the length is then a multiple
 * of 4) and nothing may follow it. Non-zero bits left over in the last
 * character are ignored, as RFC 4648 section 3.5 allows.
 *
 * Threads: the lookup tables are filled once (pthread_once), then only read.
 */
#include "s3mem/util.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t s3m_base64_encoded_length(size_t len)
{
    return (len / 3 + (len % 3 != 0)) * 4;
}

/* Two output characters for each 12-bit value: one lookup per half group. */
static char base64_pairs[4096][2];
static pthread_once_t base64_pairs_once = PTHREAD_ONCE_INIT;

static void base64_pairs_fill(void)
{
    for (unsigned i = 0; i < 4096; i++) {
        base64_pairs[i][0] = base64_alphabet[i >> 6];
        base64_pairs[i][1] = base64_alphabet[i & 63];
    }
}

void s3m_base64_encode(const void *data, size_t len, char *out)
{
    const unsigned char *in = data;

    pthread_once(&base64_pairs_once, base64_pairs_fill);
    for (; len >= 3; in += 3, len -= 3, out += 4) {
        uint32_t group = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];

        memcpy(out, base64_pairs[group >> 12], 2);
        memcpy(out + 2, base64_pairs[group & 4095], 2);
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

/* Each byte's 6-bit value shifted to its place in a 24-bit quantum, for
 * each of the quantum's four characters; BASE64_BAD for a byte outside the
 * alphabet (no valid quantum reaches that bit). One lookup per character
 * both decodes and validates. */
#define BASE64_BAD 0x80000000u
static uint32_t base64_shifted[4][256];
static pthread_once_t base64_shifted_once = PTHREAD_ONCE_INIT;

static void base64_shifted_fill(void)
{
    for (unsigned place = 0; place < 4; place++)
        for (unsigned byte = 0; byte < 256; byte++)
            base64_shifted[place][byte] = BASE64_BAD;
    for (unsigned i = 0; i < 64; i++)
        for (unsigned place = 0; place < 4; place++)
            base64_shifted[place][(unsigned char)base64_alphabet[i]] =
                (uint32_t)i << (18 - 6 * place);
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

static uint32_t base64_quantum(const unsigned char *in)
{
    return base64_shifted[0][in[0]] | base64_shifted[1][in[1]] |
           base64_shifted[2][in[2]] | base64_shifted[3][in[3]];
}

/* One pass: each quantum is decoded and checked by the same lookups. While
 * another full quantum follows, its three bytes go out in one 4-byte store
 * (the fourth is overwritten next). */
int s3m_base64_decode(const char *text, size_t text_len, unsigned char *out,
                      size_t *out_len)
{
    const unsigned char *in = (const unsigned char *)text;
    size_t len = base64_unpadded_length(text, text_len);
    size_t written = 0, i = 0;
    uint32_t group, bad = 0;

    if (len == (size_t)-1 || len % 4 == 1)
        return -EINVAL;
    pthread_once(&base64_shifted_once, base64_shifted_fill);
    for (; i + 8 <= len; i += 4, written += 3) {
        group = base64_quantum(in + i);
        bad |= group;
        uint32_t bytes = htobe32(group << 8);
        memcpy(out + written, &bytes, 4);
    }
    for (; i + 4 <= len; i += 4) {
        group = base64_quantum(in + i);
        bad |= group;
        out[written++] = (unsigned char)(group >> 16);
        out[written++] = (unsigned char)(group >> 8);
        out[written++] = (unsigned char)group;
    }
    group = 0;
    for (unsigned place = 0; i < len; i++, place++)
        group |= base64_shifted[place][in[i]];
    bad |= group;
    if (bad & BASE64_BAD)
        return -EINVAL;
    if (len % 4 >= 2)
        out[written++] = (unsigned char)(group >> 16);
    if (len % 4 == 3)
        out[written++] = (unsigned char)(group >> 8);
    *out_len = written;
    return 0;
}
