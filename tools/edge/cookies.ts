/** The edge's own cookies: where the client is, and the region it asked to be served from. */
export const LOCATION_COOKIE = 'movr_edge_location';
export const SERVE_COOKIE = 'movr_edge_serve';
