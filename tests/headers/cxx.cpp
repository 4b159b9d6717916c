// The public headers as a C++ caller sees them: compiled with -std=c++11
// -pedantic -Wall -Wextra -Werror (which includes -Wmissing-field-initializers
// in C++, so every *_INIT macro must list all fields), then run.
#include <segment.h>

#include <cstdio>

namespace {
int reject_count;
void on_reject(size_t, int, const char *, void *) { ++reject_count; }
int visit(const seg_customer_info *, void *) { return 0; }
}

int main()
{
    seg_db_options db_opts = SEG_DB_OPTIONS_INIT;
    seg_event event = SEG_EVENT_INIT;
    seg_ingest_options ingest_opts = SEG_INGEST_OPTIONS_INIT;
    seg_ingest_stats stats = SEG_INGEST_STATS_INIT;
    seg_csv_options csv_opts = SEG_CSV_OPTIONS_INIT;
    seg_customer_info info = SEG_CUSTOMER_INFO_INIT;
    seg_rfm_options rfm_opts = SEG_RFM_OPTIONS_INIT;
    seg_rfm_info rfm_info = SEG_RFM_INFO_INIT;
    (void)rfm_opts; (void)rfm_info;
    seg_segdef_stats sd_stats = SEG_SEGDEF_STATS_INIT;
    seg_segdef_report sd_report = SEG_SEGDEF_REPORT_INIT;
    (void)sd_stats; (void)sd_report;
    seg_clv_summary_options clv_so = SEG_CLV_SUMMARY_OPTIONS_INIT;
    seg_clv_summary clv_s = SEG_CLV_SUMMARY_INIT;
    seg_clv_summary_stats clv_st = SEG_CLV_SUMMARY_STATS_INIT;
    seg_clv_columns clv_c = SEG_CLV_COLUMNS_INIT;
    seg_clv_fit_options clv_fo = SEG_CLV_FIT_OPTIONS_INIT;
    seg_clv_fit_report clv_r = SEG_CLV_FIT_REPORT_INIT;
    seg_clv_value_options clv_vo = SEG_CLV_VALUE_OPTIONS_INIT;
    seg_outbox_item ob_item = SEG_OUTBOX_ITEM_INIT;
    (void)event; (void)stats; (void)info; (void)ingest_opts; (void)csv_opts;
    (void)clv_so; (void)clv_s; (void)clv_st; (void)clv_c; (void)clv_fo; (void)clv_r; (void)clv_vo;
    (void)ob_item;
    ingest_opts.on_reject = on_reject;
    csv_opts.on_reject = on_reject;

    seg_db *db = nullptr;
    if (seg_db_open(&db, ":memory:", &db_opts) != SEG_OK) {
        std::fprintf(stderr, "cxx: seg_db_open failed\n");
        return 1;
    }
    int rc = seg_customer_foreach(db, SEG_CUSTOMER_SORTED, visit, nullptr);
    seg_db_close(db);
    static_assert(SEG_VERSION_AT_LEAST(1, 0, 0), "version macro");
    return rc == SEG_OK && seg_version() == SEG_VERSION_NUMBER ? 0 : 1;
}
