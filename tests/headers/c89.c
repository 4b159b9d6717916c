/* The public headers as a C89 caller sees them: this file is compiled with
 * -std=c89 -pedantic -Wall -Wextra -Werror (and -Wmissing-field-initializers,
 * so every *_INIT macro must list all fields), then run. */
#include <segment.h>

#include <stdio.h>

int main(void)
{
    seg_db_options db_opts = SEG_DB_OPTIONS_INIT;
    seg_event event = SEG_EVENT_INIT;
    seg_ingest_options ingest_opts = SEG_INGEST_OPTIONS_INIT;
    seg_ingest_stats stats = SEG_INGEST_STATS_INIT;
    seg_csv_options csv_opts = SEG_CSV_OPTIONS_INIT;
    seg_customer_info info = SEG_CUSTOMER_INFO_INIT;
    seg_rfm_options rfm_opts = SEG_RFM_OPTIONS_INIT;
    seg_rfm_info rfm_info = SEG_RFM_INFO_INIT;
    seg_segdef_stats sd_stats = SEG_SEGDEF_STATS_INIT;
    seg_segdef_report sd_report = SEG_SEGDEF_REPORT_INIT;
    seg_clv_summary_options clv_so = SEG_CLV_SUMMARY_OPTIONS_INIT;
    seg_clv_summary clv_s = SEG_CLV_SUMMARY_INIT;
    seg_clv_summary_stats clv_st = SEG_CLV_SUMMARY_STATS_INIT;
    seg_clv_columns clv_c = SEG_CLV_COLUMNS_INIT;
    seg_clv_fit_options clv_fo = SEG_CLV_FIT_OPTIONS_INIT;
    seg_clv_fit_report clv_r = SEG_CLV_FIT_REPORT_INIT;
    seg_clv_value_options clv_vo = SEG_CLV_VALUE_OPTIONS_INIT;
    seg_outbox_item ob_item = SEG_OUTBOX_ITEM_INIT;
    seg_db *db = NULL;
    int ok = 1;

    (void)event; (void)ingest_opts; (void)stats; (void)csv_opts; (void)info;
    (void)rfm_opts; (void)rfm_info;
    (void)sd_stats; (void)sd_report;
    (void)clv_so; (void)clv_s; (void)clv_st; (void)clv_c; (void)clv_fo; (void)clv_r; (void)clv_vo;
    (void)ob_item;
    if (seg_db_open(&db, ":memory:", &db_opts) != SEG_OK) {
        fprintf(stderr, "c89: seg_db_open failed\n");
        return 1;
    }
    seg_db_close(db);
#if SEG_VERSION_AT_LEAST(1, 0, 0)
    ok = ok && seg_version() == SEG_VERSION_NUMBER;
#else
    ok = 0;
#endif
    return ok ? 0 : 1;
}
