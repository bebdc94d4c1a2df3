/** What the backend refuses, typed so the web layer maps each to one answer. */
export class MovrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An unknown id, or a row the actor may not know exists in that state. Answered 404. */
export class NotFoundError extends MovrError {}

/** Someone else's vehicle, ride or account. Answered 403, before any other rule. */
export class ForbiddenError extends MovrError {
  constructor(message = 'That belongs to someone else.') {
    super(message);
  }
}

/** A refused action; the message is shown to the rider as it is, and nothing changed. */
export class RefusedError extends MovrError {}

export class UsernameTakenError extends MovrError {
  constructor() {
    super('That username is taken.');
  }
}

/** The actor's account was deleted (by another session, maybe on another instance): they are logged out. */
export class AccountGoneError extends MovrError {
  constructor() {
    super('Your account no longer exists.');
  }
}
