#!/bin/sh
# Seeds the database on first start (offline, with slapadd), then runs
# slapd in the foreground as the openldap user.
set -e
db=/var/lib/ldap/certgate
mkdir -p "$db"
if [ ! -f "$db/data.mdb" ]; then
  slapadd -f /etc/ldap/certgate-slapd.conf -l /etc/ldap/certgate-seed.ldif
fi
chown -R openldap:openldap "$db"
exec slapd -d 0 -u openldap -g openldap -f /etc/ldap/certgate-slapd.conf -h "ldap:///"
