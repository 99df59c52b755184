; JavaScript tags.
(function_declaration name: (identifier) @name.definition.function) @definition.function
(generator_function_declaration name: (identifier) @name.definition.function) @definition.function
(class_declaration name: (identifier) @name.definition.class) @definition.class
(method_definition name: (property_identifier) @name.definition.method) @definition.method
(program (lexical_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant))
(program (variable_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant))
(program (export_statement (lexical_declaration (variable_declarator name: (identifier) @name.definition.constant) @definition.constant)))

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (member_expression property: (property_identifier) @name.reference.call))
(new_expression constructor: (identifier) @name.reference.class)
(member_expression property: (property_identifier) @name.reference.attribute)
(import_specifier name: (identifier) @name.reference.import)
(class_heritage (identifier) @name.reference.class)
(arguments (identifier) @name.reference.name)
(jsx_opening_element name: (identifier) @name.reference.class)
(jsx_self_closing_element name: (identifier) @name.reference.class)
