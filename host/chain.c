/* chain.c - a task's transform chain ("transforms": "a,b"): record flows
 * stage 0 -> stage 1 -> ... -> final target, each stage a transform plugin
 * instance with its own config and state (see connector.h). */
#include "connector.h"
#include "log.h"
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sluice_err_t stage_emit(void *arg, sluice_task_t *from, sluice_record_t *rec) {
    sl_chain_t *ch = arg;
    size_t i = 0;
    while (i < ch->n && ch->stages[i] != from) i++;
    size_t next = i + 1; /* from is stage i; an unknown task enters at 0 */
    if (i == ch->n) next = 0;
    if (next >= ch->n) return ch->final(ch->final_arg, from, rec);
    sluice_task_t *t = ch->stages[next];
    const sluice_record_t *saved = t->input;
    t->input = rec;
    sluice_err_t rc = t->plugin->desc->transform->apply(t->state, t, rec);
    t->input = saved;
    if (rc != SLUICE_OK && rc != SLUICE_ERR_NO_DATA)
        SL_WARN(t->tag, "transform apply failed: %s%s%s", sl_host_api()->err2str(rc),
                t->error[0] ? ": " : "", t->error);
    return rc;
}

int sl_chain_init(sl_chain_t *ch, const sl_connector_t *c, int id, sl_emit_fn final,
                  void *final_arg, sl_dead_letter_fn dlq, void *dlq_arg, char *err,
                  size_t errlen) {
    memset(ch, 0, sizeof(*ch));
    ch->final = final;
    ch->final_arg = final_arg;
    if (c->ntransforms == 0) return 0;
    ch->stages = calloc(c->ntransforms, sizeof(*ch->stages));
    if (!ch->stages) return -1;
    for (size_t i = 0; i < c->ntransforms; i++) {
        const sl_transform_def_t *d = &c->transforms[i];
        sl_props_t *cfg = sl_props_dup(d->config);
        sluice_task_t *t = cfg ? sl_task_new(&c->rt->svc, c->name, d->alias, d->plugin, cfg, id,
                                             c->tasks_max)
                               : NULL;
        if (!t) {
            snprintf(err, errlen, "transform %s: out of memory", d->alias);
            sl_chain_destroy(ch);
            return -1;
        }
        t->emit = stage_emit;
        t->emit_arg = ch;
        t->dead_letter = dlq;
        t->dead_letter_arg = dlq_arg;
        ch->stages[ch->n++] = t;
        if (sl_task_start(t) != SLUICE_OK) {
            snprintf(err, errlen, "transform %s: %s", d->alias, t->error);
            sl_chain_destroy(ch);
            return -1;
        }
    }
    return 0;
}

void sl_chain_destroy(sl_chain_t *ch) {
    for (size_t i = 0; i < ch->n; i++) sl_task_free(ch->stages[i]);
    free(ch->stages);
    memset(ch, 0, sizeof(*ch));
}

sluice_err_t sl_chain_push(sl_chain_t *ch, sluice_record_t *rec) {
    if (ch->n == 0) return ch->final(ch->final_arg, NULL, rec);
    return stage_emit(ch, NULL, rec);
}

int sl_chain_run_timers(sl_chain_t *ch, int max_ms) {
    int wait = max_ms;
    for (size_t i = 0; i < ch->n; i++) {
        int w = sl_task_run_timers(ch->stages[i], sl_mono_ms(), max_ms);
        if (w < wait) wait = w;
    }
    return wait;
}

void sl_chain_open(sl_chain_t *ch, sluice_topic_partition_t *parts, size_t n) {
    for (size_t i = 0; i < ch->n; i++) {
        sluice_task_t *t = ch->stages[i];
        if (t->plugin->desc->transform->open) t->plugin->desc->transform->open(t->state, t, parts, n);
    }
}

void sl_chain_close(sl_chain_t *ch, const sluice_topic_partition_t *parts, size_t n) {
    for (size_t i = 0; i < ch->n; i++) {
        sluice_task_t *t = ch->stages[i];
        if (t->plugin->desc->transform->close)
            t->plugin->desc->transform->close(t->state, t, parts, n);
    }
}

void sl_chain_pre_commit(sl_chain_t *ch, sluice_topic_partition_t *offsets, size_t n) {
    for (size_t i = 0; i < ch->n; i++) {
        sluice_task_t *t = ch->stages[i];
        if (t->plugin->desc->transform->pre_commit)
            t->plugin->desc->transform->pre_commit(t->state, t, offsets, n);
    }
}

void sl_chain_set_at_end(sl_chain_t *ch, sl_at_end_fn fn, void *arg) {
    for (size_t i = 0; i < ch->n; i++) {
        ch->stages[i]->at_end = fn;
        ch->stages[i]->at_end_arg = arg;
    }
}
