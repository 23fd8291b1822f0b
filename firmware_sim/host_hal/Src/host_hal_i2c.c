/* The host HAL's I2C: each device on the bus is a register file of 256 bytes, addressed by its 7-bit address, that
 * the harness sets with "R <address> <register> <value>" lines on the control channel (a sensor's latest output) and
 * connects or disconnects with "D <address> <0|1>" (docs/firmware.md). Reads of several bytes auto-increment the
 * register, as the usual sensors do; an absent device NACKs (HAL_ERROR, HAL_I2C_ERROR_AF). The same devices are
 * on I2C1..I2C3. */
#include "host_hal_internal.h"

I2C_TypeDef host_I2C1 = {0}, host_I2C2 = {1}, host_I2C3 = {2};

static uint8_t registers[128][256];
static uint8_t present[128];

void i2c_set_register(uint32_t address, uint32_t reg, uint32_t value) {
  if (address > 127 || reg > 255 || value > 255)
    host_fatal("control channel: I2C register %u of device 0x%02X set to %u: out of range", reg, address, value);
  registers[address][reg] = (uint8_t)value;
}

void i2c_set_present(uint32_t address, uint32_t on) {
  if (address > 127) host_fatal("control channel: I2C device address 0x%X is not a 7-bit address", address);
  present[address] = on != 0;
}

__attribute__((weak)) void HAL_I2C_MspInit(I2C_HandleTypeDef *hi2c) { UNUSED(hi2c); }

HAL_StatusTypeDef HAL_I2C_Init(I2C_HandleTypeDef *hi2c) {
  host_setup();
  if (hi2c == NULL || hi2c->Instance == NULL) return HAL_ERROR;
  if (hi2c->Init.AddressingMode != I2C_ADDRESSINGMODE_7BIT) host_fatal("I2C: the host HAL addresses 7-bit devices");
  HAL_I2C_MspInit(hi2c);
  hi2c->State = HAL_I2C_STATE_READY;
  hi2c->ErrorCode = HAL_I2C_ERROR_NONE;
  return HAL_OK;
}

HAL_StatusTypeDef HAL_I2C_DeInit(I2C_HandleTypeDef *hi2c) {
  hi2c->State = HAL_I2C_STATE_RESET;
  return HAL_OK;
}

/* The device at ST's shifted address (7-bit address << 1), or -1 (NACK: ErrorCode AF). */
static int device(I2C_HandleTypeDef *hi2c, uint16_t DevAddress) {
  if (hi2c->State != HAL_I2C_STATE_READY) return -1;
  uint32_t address = (DevAddress >> 1) & 0x7FU;
  if (!present[address]) {
    hi2c->ErrorCode = HAL_I2C_ERROR_AF;
    return -1;
  }
  hi2c->ErrorCode = HAL_I2C_ERROR_NONE;
  return (int)address;
}

HAL_StatusTypeDef HAL_I2C_IsDeviceReady(I2C_HandleTypeDef *hi2c, uint16_t DevAddress, uint32_t Trials, uint32_t Timeout) {
  UNUSED(Trials); UNUSED(Timeout);
  return device(hi2c, DevAddress) < 0 ? HAL_ERROR : HAL_OK;
}

HAL_StatusTypeDef HAL_I2C_Mem_Read(I2C_HandleTypeDef *hi2c, uint16_t DevAddress, uint16_t MemAddress,
                                   uint16_t MemAddSize, uint8_t *pData, uint16_t Size, uint32_t Timeout) {
  UNUSED(Timeout);
  int address = device(hi2c, DevAddress);
  if (address < 0 || MemAddSize != I2C_MEMADD_SIZE_8BIT || pData == NULL) return HAL_ERROR;
  for (uint16_t i = 0; i < Size; i++) pData[i] = registers[address][(MemAddress + i) & 0xFFU];
  return HAL_OK;
}

HAL_StatusTypeDef HAL_I2C_Mem_Write(I2C_HandleTypeDef *hi2c, uint16_t DevAddress, uint16_t MemAddress,
                                    uint16_t MemAddSize, const uint8_t *pData, uint16_t Size, uint32_t Timeout) {
  UNUSED(Timeout);
  int address = device(hi2c, DevAddress);
  if (address < 0 || MemAddSize != I2C_MEMADD_SIZE_8BIT || pData == NULL) return HAL_ERROR;
  for (uint16_t i = 0; i < Size; i++) registers[address][(MemAddress + i) & 0xFFU] = pData[i];
  return HAL_OK;
}

uint32_t HAL_I2C_GetError(const I2C_HandleTypeDef *hi2c) { return hi2c->ErrorCode; }
