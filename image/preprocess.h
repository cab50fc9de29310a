/* preprocess.h - how an image becomes a model's input tensor, and the one parser of it.
 *
 * A spec says how to resize and crop (resize.h), in which order the three planes go and how
 * bytes become floats: x = (p/255 - mean[c]) / std[c] (image_normalise, image.h). A model
 * file carries its spec as JSON text in its "preprocess" metadata (docs/model-format.md); the
 * daemon's config may override any of its keys per model, and `xbnserve preprocess` takes
 * each key as a flag.
 *
 * preprocess_parse is the only reader of that JSON: it applies the keys present in the object
 * onto a spec and leaves the others as they are, so the same call reads the file's metadata
 * over the defaults and then the config's overrides over that. Each key's type and range is
 * checked here; an unknown key is an error. preprocess_check adds the one rule between keys
 * that a model file must follow. Errors are one line naming the key, prefixed by `where`
 * (e.g. "models[0].preprocess.crop must be an integer in [1, 4096]").
 */
#ifndef XBN_PREPROCESS_H
#define XBN_PREPROCESS_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef enum { RESIZE_SHORTER_CROP, RESIZE_DIRECT } resize_mode;

typedef struct {
    resize_mode mode;
    int resize;    /* shorter side target for RESIZE_SHORTER_CROP */
    int crop;      /* output side S */
    int bgr;       /* 1: planes are B,G,R; 0: R,G,B */
    float mean[3]; /* per output plane, [0,1] scale */
    float std[3];
    int exif_orient; /* apply the EXIF orientation tag */
} preprocess_spec;

/* The keys of a spec, as bits: preprocess_parse reports the ones it set. */
enum {
    PRE_MODE = 1 << 0,
    PRE_RESIZE = 1 << 1,
    PRE_CROP = 1 << 2,
    PRE_ORDER = 1 << 3,
    PRE_MEAN = 1 << 4,
    PRE_STD = 1 << 5,
    PRE_EXIF = 1 << 6,
};

/* torchvision's ImageNet evaluation for an input side S: shorter side to max(256, S), centre
 * crop S, RGB, ImageNet mean and std, EXIF orientation applied. */
void preprocess_defaults(preprocess_spec *p, int input_size);

/* Apply the keys of the JSON object `o` onto *p (resize_mode, resize, crop, channel_order,
 * mean, std, exif_orient). On success returns 0 and, if `set` is not NULL, ORs the PRE_* bit
 * of each key applied into *set. On error returns -1 with the message in err; *p may then
 * hold some of the keys. */
int preprocess_parse(const cJSON *o, preprocess_spec *p, unsigned *set, const char *where,
                     char *err, size_t errlen);

/* The same from JSON text (n bytes; a model file's metadata, a --preprocess flag). */
int preprocess_parse_text(const char *text, size_t n, preprocess_spec *p, unsigned *set,
                          const char *where, char *err, size_t errlen);

/* Copy the fields of `src` whose PRE_* bit is in `set` into *dst. */
void preprocess_apply(preprocess_spec *dst, const preprocess_spec *src, unsigned set);

/* A model file's spec is whole: with RESIZE_SHORTER_CROP, resize must not be smaller than crop
 * (a file asking for padding is a mistake). 0, or -1 with the message. */
int preprocess_check(const preprocess_spec *p, const char *where, char *err, size_t errlen);

/* A model's spec: the defaults for input_size, then its "preprocess" metadata text (NULL when
 * the file has none), then preprocess_check. Messages read "metadata preprocess...". */
int preprocess_from_model(const char *metadata, int input_size, preprocess_spec *p, char *err,
                          size_t errlen);

#endif
