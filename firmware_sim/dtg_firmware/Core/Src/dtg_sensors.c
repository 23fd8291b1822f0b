/* The unit's own sensors (dtg_sensors.h): a register read of each, once per sample. */
#include "dtg_sensors.h"

#define SIGNAL_BRAKE_PRESSURE 3 /* link order: docs/link.md */
#define SIGNAL_ACCELERATION_X 6

static I2C_HandleTypeDef *i2c;
static int accel_ready; /* found and set to +-2 g; a part that stops answering is looked for again */

void sensors_init(I2C_HandleTypeDef *hi2c) {
  i2c = hi2c;
  accel_ready = 0;
}

static int accel_setup(void) {
  uint8_t id = 0, config = ACCEL_CTRL1_XL_104HZ_2G;
  return HAL_I2C_Mem_Read(i2c, ACCEL_I2C_ADDRESS << 1, ACCEL_WHO_AM_I, I2C_MEMADD_SIZE_8BIT, &id, 1, 5) == HAL_OK &&
         id == ACCEL_WHO_AM_I_VALUE &&
         HAL_I2C_Mem_Write(i2c, ACCEL_I2C_ADDRESS << 1, ACCEL_CTRL1_XL, I2C_MEMADD_SIZE_8BIT, &config, 1, 5) == HAL_OK;
}

static int brake_volts(double *volts) {
  uint8_t raw[2];
  if (i2c == NULL ||
      HAL_I2C_Mem_Read(i2c, BRAKE_I2C_ADDRESS << 1, BRAKE_CONVERSION, I2C_MEMADD_SIZE_8BIT, raw, 2, 5) != HAL_OK)
    return 0;
  *volts = (int16_t)(uint16_t)((raw[0] << 8) | raw[1]) * BRAKE_VOLTS_PER_COUNT;
  return 1;
}

static int acceleration(double *ms2) {
  uint8_t raw[2];
  if (i2c == NULL || (!accel_ready && !(accel_ready = accel_setup())))
    return 0;
  if (HAL_I2C_Mem_Read(i2c, ACCEL_I2C_ADDRESS << 1, ACCEL_OUTX_L_A, I2C_MEMADD_SIZE_8BIT, raw, 2, 5) != HAL_OK) {
    accel_ready = 0;
    return 0;
  }
  int16_t counts = (int16_t)(uint16_t)(raw[0] | (raw[1] << 8));
  *ms2 = counts * ACCEL_MS2_PER_COUNT;
  return 1;
}

void sensors_read(link_sample *sample) {
  double volts;
  if (brake_volts(&volts) && volts >= BRAKE_FAULT_VOLTS) {
    double bar = (volts - BRAKE_ZERO_VOLTS) * BRAKE_BAR_PER_VOLT;
    sample->value[SIGNAL_BRAKE_PRESSURE] = bar > 0.0 ? bar : 0.0;
    sample->has[SIGNAL_BRAKE_PRESSURE] = 1;
  }
  double ms2;
  if (acceleration(&ms2)) {
    sample->value[SIGNAL_ACCELERATION_X] = ms2;
    sample->has[SIGNAL_ACCELERATION_X] = 1;
  }
}
