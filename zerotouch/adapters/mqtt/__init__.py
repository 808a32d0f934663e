"""The MQTT front-end: provisioning over a Mosquitto broker (README, "Provisioning over MQTT")."""
