import type { NextFunction, Request, Response } from 'express';
import { type City, citiesOf, nearestCity, parseCity, type Region, regionOf } from '../../regions.js';

export interface Locality {
  city: City;
  region: Region;
}

/**
 * The request's current city, in the contract's order: the rider's explicit choice (kept in the session; the API
 * has none); else the load balancer's X-City when supported; else the city nearest X-City-Lat-Long; else the
 * rider's home city; else the first city of this deployment's region. Only the explicit choice is stored, so a
 * rider who travels follows the header.
 */
export function currentCity(req: Request, rider: { chosen?: string; home?: City }, deploymentRegion: Region): City {
  return (
    parseCity(rider.chosen) ??
    parseCity(req.get('x-city')) ??
    nearestCity(req.get('x-city-lat-long')) ??
    rider.home ??
    citiesOf(deploymentRegion)[0]!
  );
}

export function locality(deploymentRegion: Region) {
  return (req: Request, res: Response, next: NextFunction) => {
    const city = currentCity(req, { chosen: req.session.chosenCity, home: req.user?.city }, deploymentRegion);
    res.locals.locality = { city, region: regionOf(city) };
    next();
  };
}
