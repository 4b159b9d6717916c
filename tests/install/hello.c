/* Built by tests/check-install.sh against a staged `meson install`, with
 * nothing but `pkg-config --cflags --libs libsegment`. */
#include <segment.h>

#include <stdio.h>

int main(void)
{
    char err[256] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    seg_db *db = NULL;

    opts.errbuf = err;
    opts.errbuf_size = sizeof err;
    if (seg_db_open(&db, ":memory:", &opts) != SEG_OK) {
        fprintf(stderr, "hello: %s\n", err);
        return 1;
    }
    printf("hello from libsegment %s\n", seg_version_string());
    seg_db_close(db);
    if (seg_version() != SEG_VERSION_NUMBER) {
        fprintf(stderr, "hello: headers %d, library %d\n", SEG_VERSION_NUMBER, seg_version());
        return 1;
    }
    return 0;
}
