/* OBD-II polling (DESIGN.md): once per second the nine PIDs in turn, each answered or given up after 500 ms. */
#ifndef DTG_OBD_H
#define DTG_OBD_H

#include <stdint.h>

#include "dtg_link.h"

#define OBD_REQUEST_ID 0x7DFU     /* functional request */
#define OBD_RESPONSE_ID 0x7E8U    /* the engine ECU's answer */
#define OBD_PAD_BYTE 0xAAU
#define OBD_POLL_PERIOD_MS 1000U
#define OBD_RESPONSE_TIMEOUT_MS 500U
#define OBD_MAX_VALUE_AGE_MS 1500U /* an answer older than this gives no value in the sample */
#define OBD_PIDS 9U

typedef struct {
  uint32_t requests_sent, requests_unanswered, requests_answered, answers_late, request_send_errors;
  uint32_t poll_cycles, poll_ticks_missed;
} obd_stats;

extern obd_stats obd;

/* What polling needs from the rest of the firmware. */
int obd_send_request(uint8_t pid, uint32_t now_ms);   /* 0 when the CAN controller refused it */
void obd_cycle_complete(uint32_t cycle_ms);           /* every PID answered or timed out: the 1 Hz sample */

void obd_run(uint32_t now_ms);                        /* timeouts, the next request, the next cycle */
void obd_take_frame(const link_can_frame *frame, uint32_t now_ms);
void obd_values(uint32_t t_ms, link_sample *sample);  /* the bus signals of the sample at t_ms */

#endif
