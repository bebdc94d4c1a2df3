/** What the backend refuses, each with the HTTP status the web layer answers (practica's AppError). */
export class MovrError extends Error {
  /** A rule of MovR broken by the request; the message is safe to show. */
  readonly status: number = 400;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An unknown id, or a row the actor may not know exists in that state. */
export class NotFoundError extends MovrError {
  override readonly status = 404;
}

/** Someone else's vehicle, ride or account; checked before any other rule. */
export class ForbiddenError extends MovrError {
  override readonly status = 403;

  constructor(message = 'That belongs to someone else.') {
    super(message);
  }
}

/** A refused action: the rider goes back with the message as a flash, and nothing changed. */
export class RefusedError extends MovrError {
  override readonly status = 409;
}

/** The sign-up form shows it beside the username field. */
export class UsernameTakenError extends MovrError {
  override readonly status = 422;

  constructor() {
    super('That username is taken.');
  }
}

/** The actor's account was deleted (by another session, maybe on another instance): they are logged out. */
export class AccountGoneError extends MovrError {
  override readonly status = 401;

  constructor() {
    super('Your account no longer exists.');
  }
}
