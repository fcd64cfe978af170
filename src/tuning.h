/*
 * Tuning tables: the measured best knobs per (op, dtypes, hidden size,
 * row-count bucket) for one device. Plain text, one record a line, so a
 * table reads and diffs well:
 *
 *   # comment
 *   device: NVIDIA H100 80GB HBM3
 *   sms: 132
 *   cc: 90
 *   memory-mib: 81559
 *   driver: 13000
 *   library: 0.1.0
 *   templates: <digest of the kernel templates>
 *   fields: op x y w hidden bucket vec tpr rpc cluster occ storage ctas_per_sm us epilogue
 *   rmsnorm f16 f16 f16 4096 prefill 8 128 1 1 0 reg 0 12.41 -
 *   add_rmsnorm bf16 fp8e4m3 bf16 4096 decode 8 128 1 1 0 reg 0 3.02 r=bf16,q=token
 *
 * The epilogue column (nj_spec_epilogue_word; "-" for none) may be left out,
 * as in tables of normjit 0.1, whose fields line ends at "us".
 *
 * A table applies to a device whose name, SM count, compute capability and
 * memory size all match. Tables made by another driver, library version or
 * template digest still apply (their knobs are re-checked before use), and
 * the context says once, at info level, that re-tuning may help.
 *
 * Every record is checked when the table is read (its knobs must be legal
 * on the table's compute capability); a configuration with an illegal
 * record loses all its records together, so that its buckets never mix a
 * table's layout with the heuristic's (batch invariance).
 */
#ifndef NJ_TUNING_H
#define NJ_TUNING_H

#include "variant.h"

#include <stdio.h>

#define NJ_TUNING_FIELDS_V1 "op x y w hidden bucket vec tpr rpc cluster occ storage ctas_per_sm us"
#define NJ_TUNING_FIELDS NJ_TUNING_FIELDS_V1 " epilogue"

typedef struct nj_device_key {
    char name[256];
    int sms;
    int cc;
    long long memory_mib;
    int driver;
} nj_device_key;

typedef struct nj_tuning_record {
    nj_plan plan;  /* variant and grid knob */
    int bucket;
    double us;     /* measured median time of the bucket's row counts */
    int line;      /* line of the table it was read from (0 if made in memory) */
} nj_tuning_record;

typedef struct nj_tuning {
    nj_device_key device;
    char library[32];
    char templates[40];
    nj_tuning_record *records;
    size_t n, cap;
    size_t dropped;        /* records dropped when read (illegal knobs, see above) */
    char dropped_why[256]; /* the first reason, for the context's warning */
} nj_tuning;

/* Parse a table. NORMJIT_EFORMAT with "line N: ..." in the last error on malformed input. */
int nj_tuning_parse(const char *text, size_t len, nj_tuning **out);
/* Read and parse a file. NORMJIT_EIO if it cannot be read. */
int nj_tuning_load(const char *path, nj_tuning **out);
void nj_tuning_free(nj_tuning *t);

/* A new empty table for a device. */
nj_tuning *nj_tuning_new(const nj_device_key *device, const char *library,
                         const char *templates);
/* Add or replace the record of the same configuration and bucket. */
int nj_tuning_put(nj_tuning *t, const nj_tuning_record *r);
/* Write the table (header, then records in a stable order). */
int nj_tuning_write(const nj_tuning *t, FILE *f);

/* 1 if the table was made on this kind of device (name, SMs, CC, memory). */
int nj_tuning_matches(const nj_tuning *t, const nj_device_key *device);

/*
 * The record for a request (same configuration, nj_request_same_config, and
 * bucket): 1 and *out filled, else 0. A table that has records for the
 * request's configuration but none for its bucket answers with its record of
 * the nearest bucket (prefill first), so that every row count of a
 * configuration comes from one table and adds a row in one order (batch
 * invariance).
 */
int nj_tuning_lookup(const nj_tuning *t, const nj_request *r, nj_plan *out);

/* The request a record answers (its configuration and bucket). */
void nj_tuning_record_request(const nj_tuning_record *rec, nj_request *r);

/* The file name for a device's table: "nvidia-h100-80gb-hbm3-132sm.tuning". */
void nj_tuning_file_name(const nj_device_key *device, char *out, size_t size);

/*
 * Where `normjit tune` writes and the context looks for a device's table:
 * $NORMJIT_TUNING_DIR, else $XDG_CONFIG_HOME/normjit/tuning, else
 * ~/.config/normjit/tuning (nj_user_path), plus nj_tuning_file_name().
 * Caller frees *out.
 */
int nj_tuning_default_path(const nj_device_key *device, char **out);

/* The shipped tables, parsed once per process (count in *n). */
const nj_tuning *const *nj_shipped_tables(int *n);

/* Tables shipped inside the library (from kernel_src/tuning/). */
typedef struct nj_shipped_table {
    const char *name;
    const char *text;
    size_t len;
} nj_shipped_table;
extern const nj_shipped_table nj_shipped_tuning[];
extern const int nj_shipped_tuning_count;

#endif
