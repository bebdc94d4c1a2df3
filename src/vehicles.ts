/** MovR's vehicle vocabulary: a leaf (it imports nothing) that the schema, the backend and the forms all read. */

export const VEHICLE_TYPES = ['bike', 'scooter', 'skateboard'] as const;
export type VehicleType = (typeof VEHICLE_TYPES)[number];

/** `in_use` while a ride is active; `removed` is a soft delete that keeps ride history intact. */
export const VEHICLE_STATUSES = ['available', 'in_use', 'removed'] as const;
export type VehicleStatus = (typeof VEHICLE_STATUSES)[number];
