/* The UART link to the app: raw-can-v1 (the reference firmware's 15-byte frame) and dtg-link-v2 (docs/link.md). */
#ifndef DTG_LINK_H
#define DTG_LINK_H

#include <stddef.h>
#include <stdint.h>

#define LINK_FRAME_MAX 64U /* the longest frame this firmware sends: a dtg-link-v2 sample is 43 bytes */
#define LINK_SIGNALS 10U
#define LINK_NOT_AVAILABLE_U16 0xFFFFU
#define LINK_NOT_AVAILABLE_I16 (-0x8000)
#define LINK_NOT_AVAILABLE_I32 (-0x7FFFFFFF - 1)

typedef enum { LINK_RAW_CAN_V1 = 1, LINK_DTG_LINK_V2 = 2 } link_codec;

typedef struct {
  uint32_t id;
  uint8_t extended, dlc;
  uint8_t data[8];
} link_can_frame;

/* A 1 Hz sample: the ten signals in the link's order; has[i] == 0 is "not available". */
typedef struct {
  double value[LINK_SIGNALS];
  uint8_t has[LINK_SIGNALS];
} link_sample;

typedef struct {
  uint32_t requests_sent, requests_unanswered, can_frames_received, can_frames_dropped;
} link_status;

uint16_t link_crc16_modbus(const uint8_t *data, size_t n);
uint32_t link_crc32(const uint8_t *data, size_t n);

/* Each returns the frame's length in `out` (LINK_FRAME_MAX bytes), 0 when the codec cannot carry the record. */
size_t link_encode_can(link_codec codec, uint32_t seq, uint32_t t_ms, const link_can_frame *frame, uint8_t *out);
size_t link_encode_sample(uint32_t seq, uint32_t t_ms, const link_sample *sample, uint8_t *out);
size_t link_encode_status(uint32_t seq, uint32_t t_ms, const link_status *status, uint8_t *out);

#endif
