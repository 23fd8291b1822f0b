/* The UART link's framing, byte for byte as docs/link.md and harness/wire/link/ define it. */
#include "dtg_link.h"

#include <math.h>
#include <string.h>

uint16_t link_crc16_modbus(const uint8_t *data, size_t n) {
  uint16_t crc = 0xFFFFU; /* CRC-16/MODBUS: reflected poly 0xA001, init 0xFFFF, no final xor */
  for (size_t i = 0; i < n; i++) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; bit++) crc = (crc & 1U) ? (uint16_t)((crc >> 1) ^ 0xA001U) : (uint16_t)(crc >> 1);
  }
  return crc;
}

static uint32_t crc32_table[256];

uint32_t link_crc32(const uint8_t *data, size_t n) {
  if (crc32_table[1] == 0) { /* CRC-32/ISO-HDLC (zlib's): reflected poly 0xEDB88320, init and xorout 0xFFFFFFFF */
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int bit = 0; bit < 8; bit++) c = (c & 1U) ? (c >> 1) ^ 0xEDB88320U : c >> 1;
      crc32_table[i] = c;
    }
  }
  uint32_t crc = 0xFFFFFFFFU;
  for (size_t i = 0; i < n; i++) crc = (crc >> 8) ^ crc32_table[(crc ^ data[i]) & 0xFFU];
  return crc ^ 0xFFFFFFFFU;
}

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

#define V2_HEADER 13U

static size_t v2_frame(uint8_t type, uint32_t seq, uint32_t t_ms, size_t payload_len, uint8_t *out) {
  out[0] = 0xD7;
  out[1] = 0x47;
  out[2] = 0x02;
  out[3] = type;
  out[4] = (uint8_t)payload_len;
  put_u32(out + 5, seq);
  put_u32(out + 9, t_ms);
  put_u32(out + V2_HEADER + payload_len, link_crc32(out + 2, V2_HEADER - 2 + payload_len));
  return V2_HEADER + payload_len + 4U;
}

size_t link_encode_can(link_codec codec, uint32_t seq, uint32_t t_ms, const link_can_frame *frame, uint8_t *out) {
  if (frame->dlc > 8) return 0;
  if (codec == LINK_RAW_CAN_V1) {
    if (frame->extended || frame->id > 0x7FFU) return 0; /* 11-bit IDs only: never truncate an ID */
    memset(out, 0, 15);
    out[0] = 0xAA;
    put_u16(out + 1, (uint16_t)frame->id);
    out[3] = frame->dlc;
    memcpy(out + 4, frame->data, frame->dlc);
    put_u16(out + 12, link_crc16_modbus(out + 1, 11)); /* high byte first */
    out[14] = 0x55;
    return 15;
  }
  uint8_t *p = out + V2_HEADER;
  put_u32(p, (frame->extended ? 0x80000000U : 0U) | (frame->id & 0x1FFFFFFFU));
  p[4] = frame->dlc;
  memcpy(p + 5, frame->data, frame->dlc);
  return v2_frame(0x01, seq, t_ms, 5U + frame->dlc, out);
}

/* The sample's fixed-point fields (harness/wire/link/sample_fields.py): 'H' uint16, 'h' int16, 'i' int32. */
static const struct {
  char code;
  double counts_per_unit;
} sample_fields[LINK_SIGNALS] = {
    {'H', 100}, {'H', 4}, {'H', 100}, {'H', 100}, {'h', 100},
    {'H', 100}, {'h', 1000}, {'i', 10000000}, {'i', 10000000}, {'i', 100},
};

static int64_t to_raw(int field, int has, double value) {
  char code = sample_fields[field].code;
  int64_t lo = code == 'H' ? 0 : code == 'h' ? -0x7FFF : -0x7FFFFFFFLL;
  int64_t hi = code == 'H' ? 0xFFFE : code == 'h' ? 0x7FFF : 0x7FFFFFFFLL;
  if (!has || isnan(value)) {
    if (code == 'H') return (int64_t)LINK_NOT_AVAILABLE_U16;
    return code == 'h' ? (int64_t)LINK_NOT_AVAILABLE_I16 : (int64_t)LINK_NOT_AVAILABLE_I32;
  }
  if (isinf(value)) return value > 0 ? hi : lo;
  double scaled = nearbyint(value * sample_fields[field].counts_per_unit); /* ties to even, as Python's round */
  if (scaled < (double)lo) return lo;
  if (scaled > (double)hi) return hi;
  return (int64_t)scaled;
}

size_t link_encode_sample(uint32_t seq, uint32_t t_ms, const link_sample *sample, uint8_t *out) {
  uint8_t *p = out + V2_HEADER;
  size_t n = 0;
  for (int i = 0; i < (int)LINK_SIGNALS; i++) {
    int64_t raw = to_raw(i, sample->has[i], sample->value[i]);
    if (sample_fields[i].code == 'i') {
      put_u32(p + n, (uint32_t)raw);
      n += 4;
    } else {
      put_u16(p + n, (uint16_t)raw);
      n += 2;
    }
  }
  return v2_frame(0x02, seq, t_ms, n, out);
}

size_t link_encode_status(uint32_t seq, uint32_t t_ms, const link_status *status, uint8_t *out) {
  uint8_t *p = out + V2_HEADER;
  put_u32(p, status->requests_sent);
  put_u32(p + 4, status->requests_unanswered);
  put_u32(p + 8, status->can_frames_received);
  put_u32(p + 12, status->can_frames_dropped);
  return v2_frame(0x03, seq, t_ms, 16, out);
}
