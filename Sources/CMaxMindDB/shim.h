// libmaxminddb from Debian (libmaxminddb-dev): the MaxMind DB reader the geo rules use.
#include <maxminddb.h>
