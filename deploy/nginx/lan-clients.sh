#!/bin/sh
# Writes the allow list of the LAN's server blocks from LAN_CIDRS (addresses or networks,
# separated by commas or spaces; default: the private ranges): `allow …;` for each, then
# `deny all;`. nginx's image only fills ${VARIABLES} into its templates, and a list needs one
# line per entry, so compose runs this before nginx's own entrypoint (deploy/compose.yaml).
#
#   sh lan-clients.sh [OUTPUT]      (default /etc/nginx/lan-clients.conf)
set -eu
output=${1:-/etc/nginx/lan-clients.conf}
cidrs=${LAN_CIDRS:-10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7}
trap 'rm -f "$output.new"' EXIT
{
    echo "# Written from LAN_CIDRS by lan-clients.sh when nginx starts: do not edit."
    for cidr in $(echo "$cidrs" | tr ',' ' '); do
        case "$cidr" in
            *[!0-9A-Fa-f:./]* | */*/* | "")
                echo "LAN_CIDRS: '$cidr' is not an address or a network like 10.0.0.0/8" >&2
                exit 1
                ;;
        esac
        echo "allow $cidr;"
    done
    echo "deny all;"
} > "$output.new"
mv "$output.new" "$output"
