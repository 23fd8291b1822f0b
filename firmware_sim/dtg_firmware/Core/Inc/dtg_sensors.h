/* The unit's own sensors, read once per sample (dtg-hil sample firmware, docs/firmware.md, "The unit's sensors"):
 *   ADC1 IN0  the brake-pressure transducer: ratiometric, 410 counts (10 % of 12-bit full scale) at 0 bar to 3686
 *             counts at 160 bar; below 205 counts the sensor is open or shorted (no reading).
 *   I2C1      the accelerometer, an LSM6DSO-type part at 7-bit address 0x6A (WHO_AM_I 0x6C), +-2 g full scale,
 *             0.061 mg per count, x axis along the vehicle in OUTX_L_A/OUTX_H_A; a part that does not answer is no
 *             reading. */
#ifndef DTG_SENSORS_H
#define DTG_SENSORS_H

#include "dtg_link.h"
#include "stm32f4xx_hal.h"

#define BRAKE_ADC_CHANNEL ADC_CHANNEL_0
#define BRAKE_ZERO_COUNTS 410.0              /* 0 bar */
#define BRAKE_BAR_PER_COUNT (160.0 / 3276.0) /* 3686 counts: 160 bar */
#define BRAKE_FAULT_COUNTS 205U              /* below: open or shorted */

#define ACCEL_I2C_ADDRESS 0x6AU
#define ACCEL_WHO_AM_I 0x0FU
#define ACCEL_WHO_AM_I_VALUE 0x6CU
#define ACCEL_CTRL1_XL 0x10U
#define ACCEL_CTRL1_XL_104HZ_2G 0x40U
#define ACCEL_OUTX_L_A 0x28U
#define ACCEL_MS2_PER_COUNT (0.061e-3 * 9.80665)

void sensors_init(ADC_HandleTypeDef *hadc, I2C_HandleTypeDef *hi2c);
/* Brake pressure (bar) and acceleration (m/s^2) into `sample`, each marked not available when its sensor is not. */
void sensors_read(link_sample *sample);

#endif
