/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one object check: a struct that travels through a void * (loop and
 * relay callbacks' ctx) or is freed exactly once carries a magic number;
 * CHECK_OBJ asserts the pointer is non-NULL and carries the expected one.
 * Debug builds only (assert); a freed object's magic is cleared to 0.
 */
#ifndef WARREN_OBJCHECK_H
#define WARREN_OBJCHECK_H

#include <assert.h>

#define CHECK_OBJ(p, m) assert((p) && (p)->magic == (m))

#endif
