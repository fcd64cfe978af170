/*
 * Replays fuzz inputs through a target's LLVMFuzzerTestOneInput under the
 * normal build (no libFuzzer): every file named, and every file of every
 * directory named (dot files skipped), in name order, each in a buffer of
 * exactly its size. Fails when a property is violated (fuzz_common.h) or
 * when there was nothing to replay.
 */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *nj_fuzz_current_input;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data;
    long size;
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        fprintf(stderr, "cannot size %s\n", path);
        return -1;
    }
    /* Exactly `size` bytes (one for an empty file), so a read past the end is a real overflow. */
    data = malloc(size ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(data);
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    fclose(f);
    nj_fuzz_current_input = path;
    LLVMFuzzerTestOneInput(data, (size_t)size);
    nj_fuzz_current_input = NULL;
    free(data);
    return 0;
}

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    int i, n = 0;
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            struct dirent **names;
            int k, count = scandir(argv[i], &names, skip_dot, alphasort);
            if (count < 0) {
                fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                return 1;
            }
            for (k = 0; k < count; k++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                    if (replay_file(path) != 0)
                        return 1;
                    n++;
                }
                free(names[k]);
            }
            free(names);
        } else {
            if (replay_file(argv[i]) != 0)
                return 1;
            n++;
        }
    }
    printf("replayed %d input(s)\n", n);
    return n > 0 ? 0 : 1;
}
