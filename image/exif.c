/* exif.c - read the IFD0 Orientation tag from an EXIF (TIFF) blob; see exif.h. */
#include "image/exif.h"

#include <stdint.h>
#include <string.h>

enum {
    EXIF_TAG_ORIENTATION = 0x0112,
    TIFF_BYTE = 1,
    TIFF_SHORT = 3,
    TIFF_LONG = 4,
    IFD_ENTRY_BYTES = 12,
};

static unsigned rd16(const unsigned char *p, int le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t rd32(const unsigned char *p, int le)
{
    return le ? (uint32_t)rd16(p, 1) | (uint32_t)rd16(p + 2, 1) << 16
              : (uint32_t)rd16(p, 0) << 16 | (uint32_t)rd16(p + 2, 0);
}

int exif_orientation(const unsigned char *p, size_t n)
{
    if (!p) return 1;
    if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) {
        p += 6;
        n -= 6;
    }
    if (n < 8) return 1;
    int le;
    if (p[0] == 'I' && p[1] == 'I')
        le = 1;
    else if (p[0] == 'M' && p[1] == 'M')
        le = 0;
    else
        return 1;
    if (rd16(p + 2, le) != 42) return 1;
    uint32_t ifd = rd32(p + 4, le);
    if (ifd > n || n - ifd < 2) return 1;
    size_t count = rd16(p + ifd, le);
    size_t room = (n - ifd - 2) / IFD_ENTRY_BYTES; /* entries that fit: a truncated IFD */
    if (count > room) count = room;                /* is scanned as far as it goes */
    for (size_t i = 0; i < count; i++) {
        const unsigned char *e = p + ifd + 2 + i * IFD_ENTRY_BYTES;
        if (rd16(e, le) != EXIF_TAG_ORIENTATION) continue;
        unsigned type = rd16(e + 2, le);
        uint32_t cnt = rd32(e + 4, le);
        uint32_t v;
        if (cnt != 1) return 1;
        if (type == TIFF_SHORT)
            v = rd16(e + 8, le);
        else if (type == TIFF_LONG)
            v = rd32(e + 8, le);
        else if (type == TIFF_BYTE)
            v = e[8];
        else
            return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}
