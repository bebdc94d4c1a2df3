import { CITIES } from '../regions.js';
import { VEHICLE_STATUSES, VEHICLE_TYPES } from '../movr/domain.js';

/** SQL literal lists generated from the domain constants, for CHECK constraints in every dialect. */
const quoteList = (values: readonly string[]) => values.map((v) => `'${v.replaceAll("'", "''")}'`).join(', ');

export const CITY_LIST = quoteList(CITIES);
export const VEHICLE_TYPE_LIST = quoteList(VEHICLE_TYPES);
export const VEHICLE_STATUS_LIST = quoteList(VEHICLE_STATUSES);
