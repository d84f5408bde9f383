"""A small bank API that verifies sessiond access tokens with the Litestar plugin."""
