"""
The dropin package for mqttd plug-ins (authentication, authorization,
storage, message hooks), searched with C{twisted.plugin.getPlugins}.

Third-party distributions install a module C{mqttd/plugins/<name>_plugin.py}
(with no C{__init__.py}); the path extension below makes every
C{mqttd/plugins} directory on C{sys.path} part of this package, as
C{twisted/plugins/__init__.py} does for Twisted's own dropins.
Finding a plug-in never activates it: configuration does.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
