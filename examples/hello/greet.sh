#!/bin/sh
echo "@MESSAGE@, $GREETING_NAME: $*"
