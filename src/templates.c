#include "templates.h"

#include "buf.h"
#include "files.h"
#include "hash.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static nj_templates loaded;
static nj_template_file *override_files;
static int load_status;
static char load_message[1024];

/* Far above any template (the largest is a few tens of KiB); a larger file is refused whole. */
#define TEMPLATE_MAX_BYTES (4u << 20)

static int read_file(const char *path, nj_template_file *f)
{
    nj_buf b = {0};
    nj_file_error e;
    /* A link is followed (a kernel developer's own folder), but never to a device or a FIFO. */
    if (nj_file_read(AT_FDCWD, path, 0, TEMPLATE_MAX_BYTES, &b, &e) != 0) {
        snprintf(load_message, sizeof load_message, "cannot read kernel template %.800s: %s", path,
                 e.text);
        nj_buf_free(&b);
        return 0;
    }
    if (memchr(b.data, 0, b.len)) {
        snprintf(load_message, sizeof load_message,
                 "kernel template %.900s holds a NUL byte: not a source file", path);
        nj_buf_free(&b);
        return 0;
    }
    f->text = b.data;
    f->len = b.len;
    return 1;
}

static void load(void)
{
    const char *dir = getenv("NORMJIT_KERNEL_DIR");
    nj_buf all = {0};
    int i;

    loaded.files = nj_embedded_templates;
    loaded.count = nj_embedded_template_count;
    loaded.origin = "embedded";
    if (dir && *dir) {
        override_files = calloc((size_t)nj_embedded_template_count, sizeof *override_files);
        if (!override_files) {
            load_status = NORMJIT_ENOMEM;
            snprintf(load_message, sizeof load_message, "out of memory loading templates");
            return;
        }
        for (i = 0; i < nj_embedded_template_count; i++) {
            char path[4096];
            override_files[i].name = nj_embedded_templates[i].name;
            snprintf(path, sizeof path, "%s/%s", dir, nj_embedded_templates[i].name);
            if (!read_file(path, &override_files[i])) {
                load_status = NORMJIT_EIO;
                return;
            }
        }
        loaded.files = override_files;
        loaded.origin = dir;
    }
    for (i = 0; i < loaded.count; i++) {
        nj_buf_printf(&all, "%s\n%zu\n", loaded.files[i].name, loaded.files[i].len);
        nj_buf_append(&all, loaded.files[i].text, loaded.files[i].len);
    }
    if (all.oom) {
        load_status = NORMJIT_ENOMEM;
        snprintf(load_message, sizeof load_message, "out of memory hashing templates");
        nj_buf_free(&all);
        return;
    }
    nj_digest_hex(all.data, all.len, loaded.digest);
    nj_buf_free(&all);
    load_status = NORMJIT_OK;
}

int nj_templates_get(const nj_templates **out)
{
    pthread_once(&once, load);
    *out = load_status == NORMJIT_OK ? &loaded : NULL;
    if (load_status != NORMJIT_OK)
        return nj_fail(load_status, "%s (NORMJIT_KERNEL_DIR)", load_message);
    return NORMJIT_OK;
}

const nj_template_file *nj_template_find(const nj_templates *t, const char *name)
{
    int i;
    for (i = 0; i < t->count; i++)
        if (!strcmp(t->files[i].name, name))
            return &t->files[i];
    return NULL;
}
