/* The built-in 5x7 bitmap font of jade's plotting module (src/report/font5x7.c). */
#ifndef JADE_FONT5X7_H
#define JADE_FONT5X7_H
#include <stdint.h>

/* The five column bytes of the glyph of a Unicode code point (bit 0 = top row, bit 6 =
 * bottom row) in out; returns 0 (out untouched) if the font has no glyph for it. */
int jade_font5x7_glyph(uint32_t codepoint, unsigned char out[5]);

#endif
