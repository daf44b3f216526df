// libmosquitto 2.0 (Debian libmosquitto-dev), imported only by NetnetDelivery's MQTTTransport.
#include <mosquitto.h>
#include <mqtt_protocol.h>

// Enum values Swift sees as plain Int32 constants, named for the call sites.
static inline int netnet_mosq_err_success(void) { return MOSQ_ERR_SUCCESS; }
static inline int netnet_mosq_opt_protocol_version(void) { return MOSQ_OPT_PROTOCOL_VERSION; }
static inline int netnet_mqtt_protocol_v311(void) { return MQTT_PROTOCOL_V311; }
static inline int netnet_mqtt_protocol_v5(void) { return MQTT_PROTOCOL_V5; }
