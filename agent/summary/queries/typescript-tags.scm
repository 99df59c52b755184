; TypeScript / TSX tags.
(function_declaration name: (identifier) @name.definition.function) @definition.function
(class_declaration name: (type_identifier) @name.definition.class) @definition.class
(abstract_class_declaration name: (type_identifier) @name.definition.class) @definition.class
(interface_declaration name: (type_identifier) @name.definition.interface) @definition.interface
(type_alias_declaration name: (type_identifier) @name.definition.type) @definition.type
(enum_declaration name: (identifier) @name.definition.enum) @definition.enum
(method_definition name: (property_identifier) @name.definition.method) @definition.method
(method_signature name: (property_identifier) @name.definition.method) @definition.method
(abstract_method_signature name: (property_identifier) @name.definition.method) @definition.method
(module name: (identifier) @name.definition.module) @definition.module
(program (lexical_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant)))

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (member_expression property: (property_identifier) @name.reference.call))
(new_expression constructor: (identifier) @name.reference.class)
(member_expression property: (property_identifier) @name.reference.attribute)
(import_specifier name: (identifier) @name.reference.import)
(type_identifier) @name.reference.type
(arguments (identifier) @name.reference.name)
