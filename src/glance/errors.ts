/** Errors of the Glance/Keystone client: what the remote said, nothing about our own HTTP. */
export class GlanceClientError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The service answered with an error status. */
export class GlanceHttpError extends GlanceClientError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The service could not be reached, or the connection broke mid-request. */
export class GlanceNetworkError extends GlanceClientError {}

/** Keystone's catalog has no image endpoint for the configured interface and region. */
export class NoImageEndpointError extends GlanceClientError {}
