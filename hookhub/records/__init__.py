"""Value records shared by the store and the services above it.

They sit below ``hookhub.store`` so that every import arrow points down: ``core`` <- ``records``
<- ``store`` <- ``crm``/``inbound``/``outbound`` <- ``api``/``cli``. A record holds data and its
public JSON shape; it never talks to the database or the network.
"""
