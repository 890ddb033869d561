/*
 * tr_thin_deep.c - the deep forms of the thin loop (tr_thin_groups_deep and its -128 floor form,
 * tr_thin.h): 32 steps more than tr_thin_groups, so a thin layer of up to 256 inputs. The
 * generator ships this file only with a model that has such a layer (fully_connected.
 * thin_max_depth): the extra steps cost 1.4 KB of flash in each form, which a model of shorter
 * thin layers does not pay.
 * The other kernel files call the deep forms through weak references, so this file is all that
 * differs between the two kinds of firmware.
 */
#define TR_THIN_DEEP_FORMS
#include "tr_thin.h"
