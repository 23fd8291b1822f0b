/* OBD-II polling and the values of the answers (service 01, SAE J1979 scaling as in the project's obd2 DBC).
 *
 * A poll cycle starts on each whole second of the tick (cycle k at k * 1000 ms) and asks the PIDs in order, one at
 * a time: a request on 0x7DF, then up to 500 ms for the answer on 0x7E8 with the same PID; no answer in time counts
 * as unanswered and the next PID is asked. A cycle that overruns the next second skips the ticks it missed. When
 * the cycle is complete, obd_cycle_complete() sends the sample, stamped with the cycle's tick. */
#include "dtg_obd.h"

#include <string.h>

static const uint8_t poll_pids[OBD_PIDS] = {0x0D, 0x0C, 0x11, 0x05, 0x2F, 0x04, 0x0F, 0x10, 0x42};

obd_stats obd;

static struct {
  int started, cycle_open, pending;
  uint32_t next_poll_ms, cycle_ms, deadline_ms;
  uint32_t next_index; /* the next PID of the cycle to ask */
  uint8_t pending_pid;
  uint8_t timed_out[OBD_PIDS];
} poll;

typedef struct {
  int seen;
  uint32_t t_ms;
  uint8_t a, b;
} answer;

static answer answers[256]; /* the latest answer by PID */

static void ask_next(uint32_t now_ms) {
  while (!poll.pending && poll.next_index < OBD_PIDS) {
    uint8_t pid = poll_pids[poll.next_index++];
    if (obd_send_request(pid, now_ms)) {
      obd.requests_sent++;
      poll.pending = 1;
      poll.pending_pid = pid;
      poll.deadline_ms = now_ms + OBD_RESPONSE_TIMEOUT_MS;
      poll.cycle_open = 1;
    } else {
      obd.request_send_errors++; /* e.g. bus-off: this PID is skipped for this cycle */
    }
  }
}

void obd_run(uint32_t now_ms) {
  if (!poll.started) {
    poll.started = 1;
    poll.next_poll_ms = (now_ms + OBD_POLL_PERIOD_MS - 1U) / OBD_POLL_PERIOD_MS * OBD_POLL_PERIOD_MS;
  }
  if (poll.pending && (int32_t)(now_ms - poll.deadline_ms) >= 0) {
    obd.requests_unanswered++;
    for (uint32_t i = 0; i < OBD_PIDS; i++)
      if (poll_pids[i] == poll.pending_pid) poll.timed_out[i] = 1;
    poll.pending = 0;
  }
  ask_next(now_ms);
  if (poll.cycle_open && !poll.pending && poll.next_index >= OBD_PIDS) {
    poll.cycle_open = 0;
    obd_cycle_complete(poll.cycle_ms);
  }
  if (!poll.pending && poll.next_index >= OBD_PIDS && (int32_t)(now_ms - poll.next_poll_ms) >= 0) {
    uint32_t tick = now_ms / OBD_POLL_PERIOD_MS;
    obd.poll_ticks_missed += tick - poll.next_poll_ms / OBD_POLL_PERIOD_MS;
    poll.cycle_ms = tick * OBD_POLL_PERIOD_MS;
    poll.next_poll_ms = poll.cycle_ms + OBD_POLL_PERIOD_MS;
    obd.poll_cycles++;
    poll.next_index = 0;
    memset(poll.timed_out, 0, sizeof poll.timed_out);
    ask_next(now_ms);
  }
}

void obd_take_frame(const link_can_frame *frame, uint32_t now_ms) {
  (void)now_ms;
  if (frame->extended || frame->id != OBD_RESPONSE_ID || frame->dlc < 3 || frame->data[1] != 0x41U) return;
  uint8_t pid = frame->data[2];
  answer *slot = &answers[pid];
  slot->seen = 1;
  slot->t_ms = poll.cycle_ms; /* the value describes the cycle's tick, when it was asked */
  slot->a = frame->dlc > 3 ? frame->data[3] : 0;
  slot->b = frame->dlc > 4 ? frame->data[4] : 0;
  if (poll.pending && pid == poll.pending_pid) {
    obd.requests_answered++;
    poll.pending = 0;
  } else {
    for (uint32_t i = 0; i < OBD_PIDS; i++) {
      if (poll_pids[i] == pid && poll.timed_out[i]) {
        obd.answers_late++;
        poll.timed_out[i] = 0;
      }
    }
  }
}

static int fresh(uint8_t pid, uint32_t t_ms) {
  const answer *slot = &answers[pid];
  return slot->seen && (int32_t)(t_ms - slot->t_ms) <= (int32_t)OBD_MAX_VALUE_AGE_MS;
}

void obd_values(uint32_t t_ms, link_sample *sample) {
  /* the link's order: speed, rpm, throttle, brake, coolant, fuel level, acceleration, latitude, longitude, altitude */
  const double percent = 0.392156862745098; /* 100 / 255, as the DBC writes it */
  if (fresh(0x0D, t_ms)) { sample->value[0] = answers[0x0D].a; sample->has[0] = 1; }
  if (fresh(0x0C, t_ms)) { sample->value[1] = (answers[0x0C].a * 256.0 + answers[0x0C].b) * 0.25; sample->has[1] = 1; }
  if (fresh(0x11, t_ms)) { sample->value[2] = answers[0x11].a * percent; sample->has[2] = 1; }
  if (fresh(0x05, t_ms)) { sample->value[4] = answers[0x05].a - 40.0; sample->has[4] = 1; }
  if (fresh(0x2F, t_ms)) { sample->value[5] = answers[0x2F].a * percent; sample->has[5] = 1; }
}
