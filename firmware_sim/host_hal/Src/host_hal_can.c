/* The host HAL's CAN1 (bxCAN): slcan lines on a pty in and out, filter banks, a 3-deep receive FIFO. */
#include "host_hal_internal.h"

#include <stdio.h>
#include <string.h>

static int filter_accepts(const host_frame *f, uint32_t *bank) {
  /* The 32-bit register image of a frame as bxCAN compares it: STID[10:0] EXID[17:0] IDE RTR 0 */
  uint32_t image = f->ide ? ((f->id << 3) | 0x4U) : (f->id << 21);
  if (f->rtr) image |= 0x2U;
  for (uint32_t i = 0; i < HOST_FILTER_BANKS; i++) {
    const CAN_FilterTypeDef *c = &host.filters[i];
    if (c->FilterActivation != CAN_FILTER_ENABLE || c->FilterFIFOAssignment != CAN_FILTER_FIFO0) continue;
    if (c->FilterScale == CAN_FILTERSCALE_32BIT) {
      uint32_t id = (c->FilterIdHigh << 16) | (c->FilterIdLow & 0xFFFFU);
      uint32_t mask = (c->FilterMaskIdHigh << 16) | (c->FilterMaskIdLow & 0xFFFFU);
      int hit = c->FilterMode == CAN_FILTERMODE_IDMASK ? ((image ^ id) & mask) == 0 : (image == id || image == mask);
      if (hit) { *bank = i; return 1; }
    } else { /* 16-bit scale: STID[10:0] RTR IDE EXID[17:15] */
      uint32_t image16 = ((f->id >> (f->ide ? 18 : 0)) & 0x7FFU) << 5;
      if (f->rtr) image16 |= 0x10U;
      if (f->ide) image16 |= 0x8U | ((f->id >> 15) & 0x7U);
      uint32_t a = c->FilterIdLow & 0xFFFFU, b = c->FilterMaskIdLow & 0xFFFFU;
      uint32_t a2 = c->FilterIdHigh & 0xFFFFU, b2 = c->FilterMaskIdHigh & 0xFFFFU;
      int hit = c->FilterMode == CAN_FILTERMODE_IDMASK
                    ? (((image16 ^ a) & b) == 0 || ((image16 ^ a2) & b2) == 0)
                    : (image16 == a || image16 == b || image16 == a2 || image16 == b2);
      if (hit) { *bank = i; return 1; }
    }
  }
  return 0;
}

static void can_deliver(const host_frame *frame) {
  uint32_t bank = 0;
  if (host.can == NULL || !host.can_started || !filter_accepts(frame, &bank)) return;
  if (host.fifo_count == HOST_RX_FIFO_DEPTH) { /* FIFO overrun: the new frame is lost (FIFO not locked: ST resets) */
    host.fifo_overruns++;
    host.can->ErrorCode |= HAL_CAN_ERROR_FOV0;
    return;
  }
  host_frame *slot = &host.fifo[(host.fifo_head + host.fifo_count) % HOST_RX_FIFO_DEPTH];
  *slot = *frame;
  slot->filter = bank;
  host.fifo_count++;
  /* The RX0 interrupt stays pending while the FIFO holds a frame; a callback that reads none ends it here. */
  while (host.fifo_count > 0 && (host.can_its & CAN_IT_RX_FIFO0_MSG_PENDING)) {
    uint32_t before = host.fifo_count;
    HAL_CAN_RxFifo0MsgPendingCallback(host.can);
    if (host.fifo_count == before) break;
  }
}

static int hex_value(const char *s, size_t n, uint32_t *out) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = (v << 4) | (uint32_t)d;
  }
  *out = v;
  return 1;
}

static void can_answer(const char *text) { buffer_add(&host.can_out, text, strlen(text)); }

/* One slcan line from the harness (without its CR); returns 1 if it was a frame line. */
static int slcan_line(const char *line, size_t n) {
  if (n == 0) { can_answer("\r"); return 0; }
  char kind = line[0];
  if (kind == 't' || kind == 'T' || kind == 'r' || kind == 'R') {
    size_t id_chars = (kind == 't' || kind == 'r') ? 3 : 8;
    host_frame f = {0};
    uint32_t dlc = 0;
    int ok = n >= 1 + id_chars + 1 && hex_value(line + 1, id_chars, &f.id) && hex_value(line + 1 + id_chars, 1, &dlc)
             && dlc <= 8;
    f.ide = kind == 'T' || kind == 'R';
    f.rtr = kind == 'r' || kind == 'R';
    f.dlc = dlc;
    if (ok && !f.rtr) {
      ok = n == 1 + id_chars + 1 + 2 * dlc;
      for (uint32_t i = 0; ok && i < dlc; i++) {
        uint32_t byte;
        ok = hex_value(line + 2 + id_chars + 2 * i, 2, &byte);
        f.data[i] = (uint8_t)byte;
      }
    }
    if (!ok) { can_answer("\a"); return 1; }
    can_answer(f.ide ? "Z\r" : "z\r");
    can_deliver(&f);
    return 1;
  }
  if (kind == 'V') can_answer("V1013\r");
  else if (kind == 'N') can_answer("NHOST\r");
  else if (kind == 'S' || kind == 's' || kind == 'O' || kind == 'L' || kind == 'C' || kind == 'Z') can_answer("\r");
  else can_answer("\a");
  return 0;
}

void can_read_frames(uint32_t frames) {
  while (frames > 0) {
    int c = read_byte(host.can_fd, "CAN1 (slcan)");
    if (c < 0) host_fatal("CAN1 (slcan): the harness closed the port");
    if (c == '\r') {
      host.can_line[host.can_line_len] = '\0';
      frames -= (uint32_t)slcan_line(host.can_line, host.can_line_len);
      host.can_line_len = 0;
    } else if (host.can_line_len + 1 < sizeof host.can_line) {
      host.can_line[host.can_line_len++] = (char)c;
    }
  }
}

/* ------------------------------------------------------------------------------------------- CAN */

__attribute__((weak)) void HAL_CAN_MspInit(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }
__attribute__((weak)) void HAL_CAN_RxFifo0MsgPendingCallback(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }
__attribute__((weak)) void HAL_CAN_ErrorCallback(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }

HAL_StatusTypeDef HAL_CAN_Init(CAN_HandleTypeDef *hcan) {
  host_setup();
  if (hcan == NULL || hcan->Instance != CAN1) return HAL_ERROR; /* the host has one CAN controller */
  HAL_CAN_MspInit(hcan);
  host.can = hcan;
  hcan->ErrorCode = HAL_CAN_ERROR_NONE;
  hcan->State = HAL_CAN_STATE_READY;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_DeInit(CAN_HandleTypeDef *hcan) {
  hcan->State = HAL_CAN_STATE_RESET;
  host.can_started = 0;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_ConfigFilter(CAN_HandleTypeDef *hcan, const CAN_FilterTypeDef *sFilterConfig) {
  if (hcan->State != HAL_CAN_STATE_READY && hcan->State != HAL_CAN_STATE_LISTENING) {
    hcan->ErrorCode |= HAL_CAN_ERROR_NOT_READY;
    return HAL_ERROR;
  }
  if (sFilterConfig->FilterBank >= HOST_FILTER_BANKS) {
    hcan->ErrorCode |= HAL_CAN_ERROR_PARAM;
    return HAL_ERROR;
  }
  host.filters[sFilterConfig->FilterBank] = *sFilterConfig;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_Start(CAN_HandleTypeDef *hcan) {
  if (hcan->State != HAL_CAN_STATE_READY) {
    hcan->ErrorCode |= HAL_CAN_ERROR_NOT_READY;
    return HAL_ERROR;
  }
  if (host.can_fd < 0) host_fatal("HAL_CAN_Start: CAN1 has no port (DTG_HOST_CAN1_FD)");
  hcan->State = HAL_CAN_STATE_LISTENING;
  host.can_started = 1;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_Stop(CAN_HandleTypeDef *hcan) {
  hcan->State = HAL_CAN_STATE_READY;
  host.can_started = 0;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_ActivateNotification(CAN_HandleTypeDef *hcan, uint32_t ActiveITs) {
  UNUSED(hcan);
  host.can_its |= ActiveITs;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_DeactivateNotification(CAN_HandleTypeDef *hcan, uint32_t InactiveITs) {
  UNUSED(hcan);
  host.can_its &= ~InactiveITs;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_AddTxMessage(CAN_HandleTypeDef *hcan, const CAN_TxHeaderTypeDef *pHeader,
                                       const uint8_t aData[], uint32_t *pTxMailbox) {
  if (hcan->State != HAL_CAN_STATE_LISTENING) {
    hcan->ErrorCode |= HAL_CAN_ERROR_NOT_STARTED;
    return HAL_ERROR;
  }
  if (pHeader->DLC > 8 || (pHeader->IDE == CAN_ID_STD && pHeader->StdId > 0x7FFU) ||
      (pHeader->IDE == CAN_ID_EXT && pHeader->ExtId > 0x1FFFFFFFU)) {
    hcan->ErrorCode |= HAL_CAN_ERROR_PARAM;
    return HAL_ERROR;
  }
  char line[32];
  int n;
  int remote = pHeader->RTR == CAN_RTR_REMOTE;
  if (pHeader->IDE == CAN_ID_EXT)
    n = snprintf(line, sizeof line, "%c%08X%u", remote ? 'R' : 'T', (unsigned)pHeader->ExtId, (unsigned)pHeader->DLC);
  else
    n = snprintf(line, sizeof line, "%c%03X%u", remote ? 'r' : 't', (unsigned)pHeader->StdId, (unsigned)pHeader->DLC);
  for (uint32_t i = 0; !remote && i < pHeader->DLC; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%02X", aData[i]);
  line[n++] = '\r';
  buffer_add(&host.can_out, line, (size_t)n);
  host.can_frames_pending++;
  /* The frame leaves at once (the virtual bus has no arbitration): its mailbox is free again on return. */
  if (pTxMailbox != NULL) *pTxMailbox = CAN_TX_MAILBOX0;
  host.spins = 0;
  return HAL_OK;
}
uint32_t HAL_CAN_GetTxMailboxesFreeLevel(const CAN_HandleTypeDef *hcan) {
  UNUSED(hcan);
  return HOST_TX_MAILBOXES;
}
HAL_StatusTypeDef HAL_CAN_GetRxMessage(CAN_HandleTypeDef *hcan, uint32_t RxFifo, CAN_RxHeaderTypeDef *pHeader,
                                       uint8_t aData[]) {
  if (RxFifo != CAN_RX_FIFO0 || host.fifo_count == 0) {
    hcan->ErrorCode |= HAL_CAN_ERROR_PARAM;
    return HAL_ERROR;
  }
  const host_frame *f = &host.fifo[host.fifo_head];
  pHeader->IDE = f->ide ? CAN_ID_EXT : CAN_ID_STD;
  pHeader->StdId = f->ide ? 0 : f->id;
  pHeader->ExtId = f->ide ? f->id : 0;
  pHeader->RTR = f->rtr ? CAN_RTR_REMOTE : CAN_RTR_DATA;
  pHeader->DLC = f->dlc;
  pHeader->Timestamp = (uint32_t)(host.now_ms & 0xFFFFU);
  pHeader->FilterMatchIndex = f->filter;
  memcpy(aData, f->data, f->dlc);
  host.fifo_head = (host.fifo_head + 1) % HOST_RX_FIFO_DEPTH;
  host.fifo_count--;
  host.spins = 0;
  return HAL_OK;
}
uint32_t HAL_CAN_GetRxFifoFillLevel(const CAN_HandleTypeDef *hcan, uint32_t RxFifo) {
  UNUSED(hcan);
  return RxFifo == CAN_RX_FIFO0 ? host.fifo_count : 0;
}
HAL_CAN_StateTypeDef HAL_CAN_GetState(const CAN_HandleTypeDef *hcan) { return hcan->State; }
uint32_t HAL_CAN_GetError(const CAN_HandleTypeDef *hcan) { return hcan->ErrorCode; }

