/* jade file I/O: NumPy .npy (read, memory-map, write, and a preallocated writer for
 * resumable datasets), FITS images (CFITSIO) for maps, and atomic text output.
 * Every writer writes to "<path>.tmp.<pid>" and renames, so a failed or interrupted run
 * never leaves a half-written file under the final name. */
#ifndef JADE_IO_H
#define JADE_IO_H
#include <stdio.h>

#include "jade/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { JADE_F32 = 0, JADE_F64 = 1, JADE_I64 = 2, JADE_U8 = 3, JADE_F16 = 4 } jade_dtype;
size_t jade_dtype_size(jade_dtype t);

/* IEEE 754 binary16 ('<f2', numpy float16) conversions, exact bit arithmetic (no compiler
 * _Float16 needed, the same bytes everywhere). f32 -> f16 rounds to nearest, ties to even;
 * overflow gives +-Inf, NaN stays NaN. f16 -> f32 is exact. */
uint16_t jade_f32_to_f16(float x);
float jade_f16_to_f32(uint16_t h);
void jade_f32_to_f16_array(uint16_t *dst, const float *src, size_t n);
void jade_f16_to_f32_array(float *dst, const uint16_t *src, size_t n);

#define JADE_NPY_MAX_DIM 8
typedef struct {
  jade_dtype dtype;
  int ndim;
  size_t shape[JADE_NPY_MAX_DIM];
  void *data;       /* C-order, little-endian */
  /* private */
  void *map_base;
  size_t map_len;
} jade_npy;

static inline size_t jade_npy_count(const jade_npy *a) {
  size_t n = 1;
  for (int i = 0; i < a->ndim; i++) n *= a->shape[i];
  return n;
}

/* Write a whole array atomically. */
jade_status jade_npy_write(const char *path, jade_dtype dtype, int ndim, const size_t *shape,
                           const void *data);
/* Read into memory (jade_npy_release frees). Rejects Fortran order, big-endian, unsupported
 * dtypes, truncated files; with check_finite, NaN/Inf in float data are an error. */
jade_status jade_npy_read(const char *path, int check_finite, jade_npy *out);
/* Memory-map read-only (no copy). */
jade_status jade_npy_map(const char *path, jade_npy *out);
/* NaN/Inf in float data (e.g. of a mapped array) are an error naming path and element. */
jade_status jade_npy_check_finite(const char *path, const jade_npy *a);
void jade_npy_release(jade_npy *a);
/* An F16 array converted in place to an F32 one held in memory (mapping released); F32 arrays
 * are left as they are. NaN/Inf elements are an error naming path. */
jade_status jade_npy_to_f32(const char *path, jade_npy *a);

/* Preallocated .npy whose rows (leading-axis slices) are written one at a time, in any
 * order, by pwrite: for datasets that fill over several runs. ndim >= 1.
 * If the file exists it is reused (never wiped) after checking that dtype, shape and size
 * match; if it does not exist, create != 0 makes it at full size (header + zero data, via a
 * temporary + link, so a crash never leaves a half-made header and two processes creating it
 * at once end up sharing one file), create == 0 is an error. Several processes may write
 * disjoint rows of the same file. Rows never written read back as zeros. */
typedef struct jade_npy_writer jade_npy_writer;
jade_status jade_npy_writer_open(const char *path, jade_dtype dtype, int ndim,
                                 const size_t *shape, int create, jade_npy_writer **out);
jade_status jade_npy_writer_put_rows(jade_npy_writer *w, size_t first_row, size_t n_rows,
                                     const void *data);
jade_status jade_npy_writer_close(jade_npy_writer *w); /* fsync + close; always frees w */

/* ---- FITS ------------------------------------------------------------------------- */
typedef enum { JADE_KEY_DOUBLE, JADE_KEY_LONG, JADE_KEY_STRING } jade_fits_key_type;
typedef struct {
  char name[16];   /* FITS keyword, <= 8 characters */
  jade_fits_key_type type;
  double d;
  long l;
  char s[72];
  char comment[72];
} jade_fits_key;

/* A FITS file with image HDUs, written to a temporary name and renamed on close.
 * Layout: an empty primary HDU (NAXIS = 0, no user keys), then one IMAGE extension per
 * add_image call (BITPIX = -32, EXTNAME, the user keys, CHECKSUM/DATASUM). File names are
 * taken literally (no CFITSIO extended filename syntax). */
typedef struct jade_fits_writer jade_fits_writer;
jade_status jade_fits_writer_open(const char *path, jade_fits_writer **out);
/* Append an image extension (float32) of naxis (1 to 3) axes, dims[0] fastest (NAXIS1 = x),
 * with EXTNAME extname (unique in the file, case-insensitively) and extra header keys (names
 * of 1-8 characters [A-Za-z0-9_-], upper-cased; structural keywords are refused; doubles
 * written with enough digits to read back exactly; strings <= 68 characters). NaN/Inf pixels
 * are written as they are. Invalid arguments leave the writer usable; a CFITSIO write error
 * makes close fail (and delete the temporary). */
jade_status jade_fits_writer_add_image(jade_fits_writer *w, const char *extname, int naxis,
                                       const long *dims, const float *data,
                                       const jade_fits_key *keys, int n_keys);
jade_status jade_fits_writer_close(jade_fits_writer *w);  /* fsync + rename; frees w */
void jade_fits_writer_abort(jade_fits_writer *w);         /* delete the temporary; frees w */

/* Read an image HDU by EXTNAME (case-insensitive; or the primary HDU if extname is NULL) as
 * float32, with its dims (dims[0] fastest, unused dims set to 1); NaN/Inf are an error naming
 * file, HDU and pixel; a CHECKSUM/DATASUM mismatch is an error. free() the data. */
jade_status jade_fits_read_image(const char *path, const char *extname, int *naxis,
                                 long dims[3], float **data);
/* Read a header keyword of an HDU (EXTNAME or primary if NULL); a missing key is an error. */
jade_status jade_fits_read_key_double(const char *path, const char *extname, const char *key,
                                      double *out);
jade_status jade_fits_read_key_string(const char *path, const char *extname, const char *key,
                                      char *out, size_t out_len);
/* Does the HDU (EXTNAME or primary if NULL) have this header keyword? (0 also if unreadable) */
int jade_fits_has_key(const char *path, const char *extname, const char *key);
/* Does the file have an HDU with this EXTNAME? (0/1; 0 also for unreadable files) */
int jade_fits_has_hdu(const char *path, const char *extname);
/* The image HDUs that hold data, as "EXTNAME (NAXIS1xNAXIS2[xNAXIS3]), ..." ("#k" for an HDU
 * without EXTNAME, k = 0 the primary); "none" when there is none. For messages that tell a
 * user what a file has. */
jade_status jade_fits_list_images(const char *path, char *out, size_t len);
/* Walk every HDU's header (2880-byte blocks up to END, then skip the data that BITPIX, NAXISn,
 * PCOUNT and GCOUNT announce) before CFITSIO parses it: header bytes must be printable ASCII
 * (FITS 4.0, sec. 4.1.2) and TTYPEn values quoted strings (CFITSIO copies an unquoted one into
 * a 70-byte field without a bound). Every jade FITS reader calls it first. */
jade_status jade_fits_check_headers(const char *path);

/* ---- atomic text files ----------------------------------------------------------- */
typedef struct {
  FILE *f;
  char path[4096];
  char tmp[4200];
} jade_text_file;
/* Opens "<path>.tmp.<pid>" for writing (t->f). Commit: fflush + fsync + fclose (checking
 * errors) + rename; on any failure the temporary is removed and <path> is left untouched.
 * Abort removes the temporary; it is harmless after commit or a failed open. */
jade_status jade_text_open(const char *path, jade_text_file *t);
jade_status jade_text_commit(jade_text_file *t);
void jade_text_abort(jade_text_file *t);
/* Write a whole string to path atomically. */
jade_status jade_write_file_atomic(const char *path, const char *text);

/* Small helpers shared by the commands: the whole file as a NUL-terminated malloc'd string
 * (NULL, errno set, if it cannot be read or is not a regular file); whether a path exists,
 * whether it is a directory;
 * the number after "key": in a small JSON text (NaN if absent). */
char *jade_read_text_file(const char *path);
int jade_path_exists(const char *path);
int jade_path_is_dir(const char *path);
double jade_json_number(const char *text, const char *key);

/* Best effort: make a rename durable by syncing the directory that contains path. */
void jade_sync_parent_dir(const char *path);

/* Remove the temporaries "<name>.tmp.<pid>" that writers killed before their rename left in
 * dir (not recursive). Only when no writer can be running, e.g. just before a finished
 * OUT.partial is renamed to OUT. */
jade_status jade_remove_temporaries(const char *dir);
/* unlink(path), with an error naming the file when it fails. */
jade_status jade_remove_file(const char *path);
/* Publish a finished run: remove the temporaries of killed writers from partial (the run's
 * OUT.partial directory) and its run.txt (last, so that a run killed before stays resumable),
 * rename it to out_dir and sync the parent directory: OUT appears complete or not at all. */
jade_status jade_publish_dir(const char *partial, const char *out_dir);
/* A resumable run's OUT.partial directory holds run.txt, the run's identity text. Check:
 * when partial exists with run.txt == ident, *exists = 1 (resume it); when it exists but holds
 * nothing except temporaries (a run killed while creating it, before run.txt was written), it is
 * removed and *exists = 0; otherwise (another run's) an error naming what may differ
 * (e.g. "config, seed or --n"). Create: partial (with parents) and its run.txt. */
jade_status jade_run_dir_check(const char *partial, const char *ident, const char *what_differs, int *exists);
jade_status jade_run_dir_create(const char *partial, const char *ident);
/* Is name (no directory) such a temporary, "<name>.tmp.<digits>"? */
int jade_is_temporary_name(const char *name);

/* Remove a directory of files written by one run (its files, then itself; not recursive: a
 * subdirectory makes it fail). For a failed run's own output, never for a user's folder. */
jade_status jade_remove_dir(const char *dir);

/* mkdir -p; error names the path. */
jade_status jade_mkdir_p(const char *path);

/* ---- tables of named numeric columns --------------------------------------------- */
/* Read columns by name (case-insensitive) from a FITS table (the first table HDU) or a text
 * table (CSV or whitespace separated; '#' lines are comments; the first other line names
 * the columns). cols[c] is a malloc'd array of *n_rows doubles, or NULL for a missing
 * optional column (required[c] == 0). Non-numeric or non-finite values and ragged rows are
 * errors naming the file, line/row and column. */
jade_status jade_table_read(const char *path, int n_cols, const char *const *names, const int *required,
                            double **cols, size_t *n_rows);
/* The same, reading a FITS file's HDU named extname when it has one (else the first table). */
jade_status jade_table_read_hdu(const char *path, const char *extname, int n_cols, const char *const *names,
                                const int *required, double **cols, size_t *n_rows);

#ifdef __cplusplus
}
#endif
#endif
