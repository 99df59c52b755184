; Rust tags.
(function_item name: (identifier) @name.definition.function) @definition.function
(function_signature_item name: (identifier) @name.definition.function) @definition.function
(struct_item name: (type_identifier) @name.definition.class) @definition.class
(enum_item name: (type_identifier) @name.definition.enum) @definition.enum
(union_item name: (type_identifier) @name.definition.class) @definition.class
(trait_item name: (type_identifier) @name.definition.interface) @definition.interface
(type_item name: (type_identifier) @name.definition.type) @definition.type
(mod_item name: (identifier) @name.definition.module) @definition.module
(const_item name: (identifier) @name.definition.constant) @definition.constant
(static_item name: (identifier) @name.definition.constant) @definition.constant
(macro_definition name: (identifier) @name.definition.macro) @definition.macro
(impl_item type: (type_identifier) @name.definition.impl) @definition.impl
(impl_item type: (generic_type type: (type_identifier) @name.definition.impl)) @definition.impl

(call_expression function: (identifier) @name.reference.call)
(call_expression function: (field_expression field: (field_identifier) @name.reference.call))
(call_expression function: (scoped_identifier name: (identifier) @name.reference.call))
(field_expression field: (field_identifier) @name.reference.attribute)
(macro_invocation macro: (identifier) @name.reference.call)
(type_identifier) @name.reference.type
(use_declaration argument: (scoped_identifier name: (identifier) @name.reference.import))
(use_list (identifier) @name.reference.import)
