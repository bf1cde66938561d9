#!/bin/sh
# GET /cgi-bin/peer on the test app (busybox httpd): the client's address as
# the server saw it (an IPv4 peer without httpd's [::ffff:...] form) and the
# pod's name.
a=${REMOTE_ADDR#"[::ffff:"}
a=${a#"["}
printf 'Content-Type: text/plain\r\n\r\n%s %s\n' "${a%"]"}" "$(hostname)"
