/*
 * ui.h - the worker's live page (GET /ui): static HTML+JS compiled into the
 * binary. The script polls GET /metrics (throughput: records/s from the
 * counters' increase between polls) and GET /connectors/{name}/latest for
 * every connector that keeps latest records (latest.records.max), and shows
 * one row per key (symbol): VWAP, last price, trades, window - the latest
 * window result the sink got.
 */
#ifndef SLUICE_HOST_UI_H
#define SLUICE_HOST_UI_H

extern const char sl_ui_html[];

#endif
