"""What the API does to dirhook's resources, apart from HTTP: routers parse the request,
call a service, and shape its answer. Services raise ``RequestError`` kinds (the app maps
them to status codes) and do their database work in a worker thread, never on the event
loop, where a locked SQLite database (30 s busy timeout) would freeze every request."""
