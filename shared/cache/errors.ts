import { AppError } from '#shared/errors';

/** Redis could not record a table-version bump; retry, or expect up to maxTtlMs of staleness. */
export class CacheUnavailableError extends AppError {
  readonly code = 'CACHE_UNAVAILABLE';
}

/** ResultCacheOptions are inconsistent (a programming or config-mapping error). */
export class CacheOptionsError extends AppError {
  readonly code = 'CACHE_OPTIONS_INVALID';
}
