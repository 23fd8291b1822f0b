/* The unit's own sensors, read once per sample (dtg-hil sample firmware, docs/firmware.md, "The unit's sensors"),
 * both on I2C1:
 *   0x48  the brake-pressure transducer (ratiometric, 0.5 V at 0 bar to 4.5 V at 160 bar) through an ADS1115-type
 *         16-bit ADC at +-6.144 V full scale: conversion register 0x00, big-endian, 0.1875 mV a count; below 0.25 V
 *         the transducer is open or shorted (no reading).
 *   0x6A  the accelerometer, an LSM6DSO-type part (WHO_AM_I 0x6C), +-2 g full scale, 0.061 mg a count, x along the
 *         vehicle in OUTX_L_A/OUTX_H_A.
 * A part that does not answer is no reading. */
#ifndef DTG_SENSORS_H
#define DTG_SENSORS_H

#include "dtg_link.h"
#include "stm32f4xx_hal.h"

#define BRAKE_I2C_ADDRESS 0x48U
#define BRAKE_CONVERSION 0x00U
#define BRAKE_VOLTS_PER_COUNT (6.144 / 32768.0)
#define BRAKE_ZERO_VOLTS 0.5
#define BRAKE_BAR_PER_VOLT (160.0 / 4.0)
#define BRAKE_FAULT_VOLTS 0.25

#define ACCEL_I2C_ADDRESS 0x6AU
#define ACCEL_WHO_AM_I 0x0FU
#define ACCEL_WHO_AM_I_VALUE 0x6CU
#define ACCEL_CTRL1_XL 0x10U
#define ACCEL_CTRL1_XL_104HZ_2G 0x40U
#define ACCEL_OUTX_L_A 0x28U
#define ACCEL_MS2_PER_COUNT (0.061e-3 * 9.80665)

void sensors_init(I2C_HandleTypeDef *hi2c);
/* Brake pressure (bar) and acceleration (m/s^2) into `sample`, each marked not available when its sensor is not. */
void sensors_read(link_sample *sample);

#endif
